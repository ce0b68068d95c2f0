//! The JSON Schema of the fleet file. `schema/fleet.schema.json` must equal [`schema_text`]: a
//! unit test keeps them in step (`STREAMSTACK_BLESS=1 cargo test --lib fleet::schema` writes it).

use serde_json::{json, Value};

use super::file::DEFAULT_ROLE;

pub fn schema() -> Value {
    let regions = json!({
        "type": "array",
        "minItems": 1,
        "uniqueItems": true,
        "items": {"type": "string", "pattern": "^[a-z]{2}(-[a-z]+)+-[0-9]+$"},
        "description": "AWS region codes"
    });
    let role = json!({"type": "string", "pattern": "^[\\w+=,.@-]{1,64}$",
        "description": "The IAM role assumed in the target account"});
    let external_id = json!({"type": "string", "pattern": "^[\\w+=,.@:/-]{2,1224}$",
        "description": "Passed to AssumeRole as ExternalId"});
    let common = json!({
        "name": {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,64}$",
            "description": "A label (default: the account id)"},
        "vars": {"type": "object",
            "propertyNames": {"pattern": "^[A-Za-z_][A-Za-z0-9_]*$"},
            "additionalProperties": {"type": "string"},
            "description": "Template variables of this target"},
        "regions": regions,
        "assume_role": role,
        "external_id": external_id
    });
    let with = |key: &str, value: Value| {
        let mut props = common.clone();
        props[key] = value;
        json!({"type": "object", "required": [key], "additionalProperties": false, "properties": props})
    };
    json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "$id": "https://streamstack.dev/schema/fleet.schema.json",
        "title": "streamstack fleet",
        "description": "One spec across many accounts and regions (streamstack ... --fleet FILE)",
        "type": "object",
        "required": ["version", "targets"],
        "additionalProperties": false,
        "properties": {
            "version": {"const": 1},
            "assume_role": {"allOf": [role], "default": DEFAULT_ROLE},
            "external_id": external_id,
            "regions": regions,
            "targets": {
                "type": "array",
                "minItems": 1,
                "items": {"oneOf": [
                    with("account", json!({"type": "string", "pattern": "^[0-9]{12}$",
                        "description": "A 12-digit account id, quoted"})),
                    with("organizational_unit", json!({"type": "string",
                        "pattern": "^ou-[0-9a-z]{4,32}-[a-z0-9]{8,32}$",
                        "description": "Every ACTIVE account of the OU"}))
                ]}
            }
        }
    })
}

pub fn schema_text() -> String {
    format!("{:#}\n", schema())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checked_in_schema_is_the_generated_one() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/fleet.schema.json");
        if std::env::var_os("STREAMSTACK_BLESS").is_some() {
            std::fs::write(&path, schema_text()).unwrap();
        }
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            on_disk == schema_text(),
            "schema/fleet.schema.json is stale: STREAMSTACK_BLESS=1 cargo test --lib fleet::schema"
        );
    }
}
