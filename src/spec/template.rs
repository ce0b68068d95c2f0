//! Scalar templating: string values may hold minijinja expressions over `stack`, `region`,
//! `account_id` and `vars.*`. Only values are templated, never the YAML structure.

use std::collections::BTreeMap;

use minijinja::{Environment, UndefinedBehavior};

pub struct Templater {
    env: Environment<'static>,
    ctx: minijinja::Value,
    /// Every name a template may use, e.g. `stack`, `vars.instance_type`.
    defined: Vec<String>,
}

/// Does this string hold template syntax?
pub fn is_template(s: &str) -> bool {
    s.contains("{{") || s.contains("{%") || s.contains("{#")
}

impl Templater {
    pub fn new(
        stack: &str,
        region: &str,
        account_id: &str,
        vars: &BTreeMap<String, String>,
    ) -> Self {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        // Values are not HTML: never escape.
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        let ctx = minijinja::context! {
            stack => stack,
            region => region,
            account_id => account_id,
            vars => vars,
        };
        let mut defined: Vec<String> = ["stack", "region", "account_id"].map(String::from).into();
        defined.extend(vars.keys().map(|k| format!("vars.{k}")));
        Templater { env, ctx, defined }
    }

    /// Renders `s` if it holds template syntax; returns it unchanged otherwise.
    pub fn render(&self, s: &str) -> Result<String, String> {
        if !is_template(s) {
            return Ok(s.to_string());
        }
        self.env.render_str(s, &self.ctx).map_err(|e| {
            if e.kind() == minijinja::ErrorKind::UndefinedError {
                if let Some(msg) = self.undefined(s) {
                    return msg;
                }
            }
            describe(&e)
        })
    }

    /// Names the undefined variables of a template, and what is defined.
    fn undefined(&self, s: &str) -> Option<String> {
        let tmpl = self.env.template_from_str(s).ok()?;
        let mut missing: Vec<String> = tmpl
            .undeclared_variables(true)
            .into_iter()
            .filter(|v| !self.defined.contains(v) && v != "vars")
            .collect();
        missing.sort();
        if missing.is_empty() {
            return None;
        }
        let names = missing
            .iter()
            .map(|m| format!("`{m}`"))
            .collect::<Vec<_>>()
            .join(", ");
        Some(format!(
            "undefined template variable {names} (defined: {}; set vars: or --var NAME=VALUE)",
            self.defined.join(", ")
        ))
    }
}

/// A one-line description of a template error, without minijinja's source dump.
fn describe(e: &minijinja::Error) -> String {
    let mut msg = match e.kind() {
        minijinja::ErrorKind::UndefinedError => "template refers to an undefined value".to_string(),
        _ => format!("template error: {}", e.kind()),
    };
    if let Some(detail) = e.detail() {
        msg.push_str(": ");
        msg.push_str(detail);
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_context_and_reports_undefined() {
        let mut vars = BTreeMap::new();
        vars.insert("instance_type".to_string(), "t3.micro".to_string());
        let t = Templater::new("lab", "eu-west-1", "123456789012", &vars);
        assert_eq!(
            t.render("{{ vars.instance_type }}").as_deref(),
            Ok("t3.micro")
        );
        assert_eq!(
            t.render("{{ stack }}-{{ region }}-{{ account_id }}")
                .as_deref(),
            Ok("lab-eu-west-1-123456789012")
        );
        assert_eq!(t.render("plain <b>").as_deref(), Ok("plain <b>"));
        let err = t.render("{{ vars.missing }}").expect_err("undefined");
        assert!(err.contains("`vars.missing`"), "{err}");
        assert!(err.contains("vars.instance_type"), "{err}");
        assert!(t.render("{{ nope }}").is_err());
        assert!(t.render("{{ unclosed").is_err());
    }
}
