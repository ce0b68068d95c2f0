//! The agent bundle of an external host (`render --what agent-bundle --host KEY --out DIR`):
//! `agent.json`, `install.sh` (RPM and DEB systems) and a `README.md` of the steps, rendered
//! from `templates/`. No secret is in any of them: the key is in the credentials file that
//! `apply --credentials-dir` wrote, which the install script copies to the host.

use serde_json::{json, Value};

use super::environment;

const INSTALL_SH: &str = include_str!("../../templates/install.sh.j2");
const README: &str = include_str!("../../templates/agent-bundle-README.md.j2");

/// Where the install script puts the host's credentials file (root:aws-kinesis-agent-user 0640).
pub const HOST_CREDENTIALS_FILE: &str = "/etc/aws-kinesis/credentials";

/// What the bundle needs of one external host.
pub struct BundleInput<'a> {
    pub stack: &'a str,
    pub host: &'a str,
    pub region: &'a str,
    pub profile: &'a str,
    pub agent_json: &'a str,
    pub directories: &'a [String],
}

/// The bundle's files as a JSON object: file name → contents.
pub fn files(input: &BundleInput) -> Result<Value, minijinja::Error> {
    let ctx = minijinja::context! {
        stack => input.stack,
        host => input.host,
        region => input.region,
        profile => input.profile,
        directories => input.directories,
        credentials_file => HOST_CREDENTIALS_FILE,
    };
    let env = environment();
    let install = env.render_str(INSTALL_SH, ctx.clone())?;
    let readme = env.render_str(README, ctx)?;
    Ok(json!({
        "agent.json": format!("{}\n", input.agent_json),
        "install.sh": install,
        "README.md": readme,
    }))
}

/// agent.json of an external host: the EC2 one plus a key naming the credentials profile.
/// The agent ignores keys it does not know (its configuration reader looks keys up by name);
/// the profile itself reaches the agent as AWS_PROFILE (see install.sh).
pub fn external_agent_json(agent_json: &str, profile: &str) -> String {
    match serde_json::from_str::<Value>(agent_json) {
        Ok(Value::Object(mut m)) => {
            m.insert("streamstack.credentialsProfile".into(), json!(profile));
            m.insert(
                "streamstack.credentialsFile".into(),
                json!(HOST_CREDENTIALS_FILE),
            );
            serde_json::to_string_pretty(&Value::Object(m)).unwrap_or_else(|_| agent_json.into())
        }
        _ => agent_json.to_string(),
    }
}
