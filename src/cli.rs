//! Command-line definitions (clap derive). The contract is SPEC.md's "The CLI" section.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "streamstack",
    version,
    about = "Infrastructure as code for AWS Kinesis log pipelines",
    long_about = "Validate, plan, apply and destroy a Kinesis log pipeline (EC2 hosts running the \
                  Kinesis Agent → Kinesis Data Stream → Firehose → S3) described in one YAML spec."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// Set a template variable (overrides `vars:` in the spec); repeatable.
    #[arg(long = "var", value_name = "NAME=VALUE", global = true, value_parser = parse_var)]
    pub vars: Vec<(String, String)>,

    /// AWS region, when the spec has no `region:` (also AWS_REGION / AWS_DEFAULT_REGION).
    #[arg(long, global = true, value_name = "REGION")]
    pub region: Option<String>,

    /// Disable colours (also NO_COLOR).
    #[arg(long, global = true)]
    pub no_color: bool,

    /// Print more detail (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check spec files offline (no credentials, no network); every error with FILE:LINE:COL.
    Validate {
        /// Spec files to check.
        #[arg(required = true, value_name = "SPEC")]
        specs: Vec<PathBuf>,
    },
    /// Print what would be sent to AWS: user-data, agent.json or IAM policies.
    Render {
        /// The spec file.
        #[arg(value_name = "SPEC")]
        spec: PathBuf,
        /// The host to render, when the spec has several.
        #[arg(long, value_name = "NAME")]
        host: Option<String>,
        /// What to render.
        #[arg(long, value_enum, default_value_t = What::UserData)]
        what: What,
    },
    /// Print the JSON Schema of the spec (for yaml-language-server and editors).
    Schema,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum What {
    /// The user-data script of a host (before base64).
    UserData,
    /// The Kinesis Agent's /etc/aws-kinesis/agent.json of a host.
    AgentConfig,
    /// Every derived IAM role's trust policy and inline policy, as JSON.
    Policies,
}

fn parse_var(s: &str) -> Result<(String, String), String> {
    let (name, value) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not NAME=VALUE"))?;
    let ok = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !ok {
        return Err(format!("{name:?} is not a variable name (letters, digits, _)"));
    }
    Ok((name.to_string(), value.to_string()))
}
