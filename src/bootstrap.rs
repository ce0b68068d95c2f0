//! Agent bootstrapping: `agent.json` and the user-data script that installs the agent, both
//! rendered from the minijinja templates in `templates/`, embedded in the binary so an installed
//! `streamstack` works from any directory.

pub mod bundle;

use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;
use serde_json::{json, Value};

use crate::model::Env;
use crate::spec::types::{Format, SampleData};

const AGENT_JSON: &str = include_str!("../templates/agent.json.j2");
const USER_DATA: &str = include_str!("../templates/user-data.sh.j2");

/// EC2's limit on user data, in raw form before base64.
pub const USER_DATA_MAX_BYTES: usize = 16 * 1024;

/// One agent flow with its target resolved to a physical name.
#[derive(Debug, Clone, Serialize)]
pub struct AgentFlow {
    pub files: String,
    /// Set for flows to a Kinesis stream.
    pub kinesis_stream: Option<String>,
    /// Set for flows to a direct-put Firehose delivery.
    pub delivery_stream: Option<String>,
    #[serde(skip)]
    pub format: Format,
}

/// The agent's `dataProcessingOptions` for a format (docs/aws-facts.md#data-processing-options).
pub fn processing_options(format: &Format) -> Option<Value> {
    let log = |fmt: &str| json!([{"optionName": "LOGTOJSON", "logFormat": fmt}]);
    match format {
        Format::Lines | Format::Json => None,
        Format::Csv { fields } => {
            Some(json!([{"optionName": "CSVTOJSON", "customFieldNames": fields}]))
        }
        Format::ApacheLog => Some(log("COMMONAPACHELOG")),
        Format::ApacheCombined => Some(log("COMBINEDAPACHELOG")),
        Format::ApacheError => Some(log("APACHEERRORLOG")),
        Format::Syslog => Some(log("SYSLOG")),
        Format::Rfc3339Syslog => Some(log("RFC3339SYSLOG")),
    }
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    env.set_keep_trailing_newline(true);
    env.add_filter("shell_quote", shell_quote);
    env
}

/// Single-quotes a string for POSIX shells.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Renders agent.json for one host. The result is pretty-printed, valid JSON.
pub fn agent_json(env: &Env, flows: &[AgentFlow]) -> Result<String, minijinja::Error> {
    let flows: Vec<Value> = flows
        .iter()
        .map(|f| {
            json!({
                "files": f.files,
                "kinesis_stream": f.kinesis_stream,
                "delivery_stream": f.delivery_stream,
                "processing": processing_options(&f.format),
            })
        })
        .collect();
    let ctx = minijinja::context! {
        region => env.region,
        dns_suffix => env.dns_suffix(),
        flows => flows,
    };
    let text = environment().render_str(AGENT_JSON, ctx)?;
    Ok(text.trim().to_string())
}

/// Everything the user-data template needs for one host.
pub struct UserDataInput<'a> {
    pub stack: &'a str,
    pub host: &'a str,
    /// Where the instance runs: its own tag call goes to this region's EC2 endpoint.
    pub region: &'a str,
    pub instance_profile: &'a str,
    pub agent_json: &'a str,
    pub flows: &'a [AgentFlow],
    pub sample: Option<&'a SampleData>,
}

/// Renders the user-data script for one host.
pub fn user_data(input: &UserDataInput) -> Result<String, minijinja::Error> {
    let mut directories: Vec<String> = input
        .flows
        .iter()
        .filter_map(|f| f.files.rsplit_once('/').map(|(d, _)| d.to_string()))
        .collect();
    if let Some(s) = input.sample {
        if let Some((d, _)) = s.file.rsplit_once('/') {
            directories.push(d.to_string());
        }
    }
    directories.sort();
    directories.dedup();
    let ctx = minijinja::context! {
        stack => input.stack,
        host => input.host,
        region => input.region,
        bootstrap_tag => crate::model::TAG_BOOTSTRAP,
        instance_profile => input.instance_profile,
        agent_json => input.agent_json,
        directories => directories,
        sample => input.sample,
    };
    environment().render_str(USER_DATA, ctx)
}

/// The agent.json embedded in a rendered user-data script (between the heredoc markers).
pub fn extract_agent_json(user_data: &str) -> Option<&str> {
    let start =
        user_data.find("<<'STREAMSTACK_AGENT_JSON'\n")? + "<<'STREAMSTACK_AGENT_JSON'\n".len();
    let end = start + user_data[start..].find("\nSTREAMSTACK_AGENT_JSON\n")?;
    Some(&user_data[start..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_json_is_json_with_regional_endpoints() {
        let env = Env::new("123456789012", "ap-northeast-2", "lab");
        let flows = vec![
            AgentFlow {
                files: "/var/log/weather/*.log".into(),
                kinesis_stream: Some("lab-weather".into()),
                delivery_stream: None,
                format: Format::Lines,
            },
            AgentFlow {
                files: "/var/log/httpd/access_log*".into(),
                kinesis_stream: None,
                delivery_stream: Some("lab-direct".into()),
                format: Format::ApacheCombined,
            },
        ];
        let text = agent_json(&env, &flows).expect("renders");
        let v: Value = serde_json::from_str(&text).expect("valid JSON");
        assert_eq!(
            v["kinesis.endpoint"],
            "kinesis.ap-northeast-2.amazonaws.com"
        );
        assert_eq!(
            v["firehose.endpoint"],
            "firehose.ap-northeast-2.amazonaws.com"
        );
        assert_eq!(
            v["cloudwatch.endpoint"],
            "monitoring.ap-northeast-2.amazonaws.com"
        );
        assert_eq!(v["flows"][0]["kinesisStream"], "lab-weather");
        assert!(v["flows"][0].get("deliveryStream").is_none());
        assert_eq!(v["flows"][1]["deliveryStream"], "lab-direct");
        assert_eq!(
            v["flows"][1]["dataProcessingOptions"][0]["logFormat"],
            "COMBINEDAPACHELOG"
        );
    }

    #[test]
    fn shell_quote_survives_quotes() {
        assert_eq!(shell_quote("a'b"), r"'a'\''b'");
    }
}
