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

    /// AWS shared-config profile.
    #[arg(long, global = true, value_name = "NAME")]
    pub profile: Option<String>,

    /// Send every AWS call to this endpoint, e.g. a local emulator (also AWS_ENDPOINT_URL).
    /// S3 then uses path-style addressing.
    #[arg(long, global = true, value_name = "URL")]
    pub endpoint_url: Option<String>,

    /// Request budget: `aws` keeps every AWS call under AWS's documented per-operation request
    /// quotas (Kinesis, Firehose: 5 per second...), so AWS never throttles; `off` sends as fast
    /// as it can, for emulators without quotas (moto, LocalStack).
    #[arg(
        long,
        global = true,
        value_name = "aws|off",
        env = "STREAMSTACK_API_BUDGET",
        default_value = "aws"
    )]
    pub api_budget: streamstack::budget::BudgetMode,

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
        /// How to print diagnostics: human, json, or github (::error annotations).
        #[arg(long, value_enum, default_value_t = ValidateFormat::Human, value_name = "FORMAT")]
        format: ValidateFormat,
    },
    /// Print what would be sent to AWS: user-data, agent.json, IAM policies, or the whole stack
    /// as a CloudFormation template.
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
    /// Compare the spec with what is live in AWS and show what apply would change.
    Plan {
        /// The spec file.
        #[arg(value_name = "SPEC")]
        spec: PathBuf,
        /// Print the plan as JSON (same as --format json; shape documented in README.md).
        #[arg(long, conflicts_with = "format")]
        json: bool,
        /// How to print the plan: human, json, or markdown (for pull-request comments).
        #[arg(long, value_enum, value_name = "FORMAT")]
        format: Option<PlanFormat>,
        /// Save the plan to FILE for `apply FILE`.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Exit 0 when there are no changes, 2 when there are, 1 on error.
        #[arg(long)]
        detailed_exitcode: bool,
    },
    /// Make AWS match the spec (or a plan saved with `plan --out`).
    Apply {
        /// A spec file, or a plan file from `plan --out`.
        #[arg(value_name = "SPEC|PLANFILE")]
        target: PathBuf,
        /// Do not ask for confirmation.
        #[arg(long)]
        auto_approve: bool,
        /// Print the plan and progress events as JSON lines.
        #[arg(long)]
        json: bool,
        /// Maximum number of operations at once.
        #[arg(long, default_value_t = 10, value_name = "N")]
        parallelism: usize,
        /// Wait this long for another run's lock on the stack (default: fail at once).
        #[arg(long, value_name = "DUR", value_parser = parse_duration)]
        lock_timeout: Option<std::time::Duration>,
        /// Also wait until new or replaced hosts report their bootstrap (default 10m).
        #[arg(long, value_name = "DUR", num_args = 0..=1, default_missing_value = "10m", value_parser = parse_duration)]
        wait_bootstrap: Option<std::time::Duration>,
    },
    /// Verify the running pipeline hop by hop (hosts, streams, deliveries) and name the first
    /// broken hop.
    Check {
        /// The spec file.
        #[arg(value_name = "SPEC")]
        spec: PathBuf,
        /// Write N test records (JSON, with a run id) into every stream and direct delivery
        /// first, and wait until they reach S3.
        #[arg(long, value_name = "N")]
        put: Option<u32>,
        /// How long to wait for every hop to pass (default: look once; with --put, 5m).
        #[arg(long, value_name = "DUR", value_parser = parse_duration)]
        timeout: Option<std::time::Duration>,
        /// Print the report as one JSON object (the last stdout line).
        #[arg(long)]
        json: bool,
    },
    /// Delete everything the stack owns (tagged streamstack:stack), buckets included.
    Destroy {
        /// The spec file of the stack.
        #[arg(
            value_name = "SPEC",
            required_unless_present = "stack",
            conflicts_with = "stack"
        )]
        spec: Option<PathBuf>,
        /// Destroy the stack of this name, without its spec file (found by its tag).
        #[arg(long, value_name = "NAME")]
        stack: Option<String>,
        /// Do not ask for confirmation.
        #[arg(long)]
        auto_approve: bool,
        /// Print the plan and progress events as JSON lines.
        #[arg(long)]
        json: bool,
        /// Wait this long for another run's lock on the stack (default: fail at once).
        #[arg(long, value_name = "DUR", value_parser = parse_duration)]
        lock_timeout: Option<std::time::Duration>,
    },
    /// Remove a stack's lock left by a run that died (its id is in the "locked" message).
    ForceUnlock {
        /// The spec file of the stack.
        #[arg(value_name = "SPEC")]
        spec: PathBuf,
        /// The lock's id.
        #[arg(value_name = "LOCK_ID")]
        lock_id: String,
    },
    /// List every stack in the region (found by the streamstack:stack tag), with its expiry.
    Stacks {
        /// Print the list as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Destroy every stack in the region whose streamstack:expires-at has passed.
    Gc {
        /// Only list the expired stacks.
        #[arg(long)]
        dry_run: bool,
        /// Do not ask for confirmation.
        #[arg(long)]
        auto_approve: bool,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show ids, ARNs, where data lands and how to reach the hosts.
    Output {
        #[arg(value_name = "SPEC")]
        spec: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Print the JSON Schema of the spec (for yaml-language-server and editors).
    Schema,
    /// Write a commented, valid starting spec.
    Init {
        /// Which example to start from.
        #[arg(long, value_enum, default_value_t = Example::WeatherLab)]
        example: Example,
        /// Overwrite the file if it exists.
        #[arg(long)]
        force: bool,
        /// Where to write it.
        #[arg(value_name = "PATH", default_value = "stack.yaml")]
        path: PathBuf,
    },
    /// Print a shell completion script (source it from your shell's startup file).
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Example {
    /// The lab: a host, a stream, a delivery reading it, a bucket.
    WeatherLab,
    /// Thirty students, each with a stream, a delivery and a host; one shared bucket.
    Classroom,
    /// The smallest pipeline: the agent writes to Firehose directly.
    Direct,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PlanFormat {
    Human,
    Json,
    Markdown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ValidateFormat {
    Human,
    Json,
    /// GitHub Actions workflow commands: `::error file=…,line=…,col=…::message`.
    Github,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum What {
    /// The user-data script of a host (before base64).
    UserData,
    /// The Kinesis Agent's /etc/aws-kinesis/agent.json of a host.
    AgentConfig,
    /// Every derived IAM role's trust policy and inline policy, as JSON.
    Policies,
    /// The whole stack as one CloudFormation template (YAML).
    Cloudformation,
}

fn parse_var(s: &str) -> Result<(String, String), String> {
    let (name, value) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not NAME=VALUE"))?;
    let ok = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !ok {
        return Err(format!(
            "{name:?} is not a variable name (letters, digits, _)"
        ));
    }
    Ok((name.to_string(), value.to_string()))
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    streamstack::spec::rules::duration(s)
        .map(std::time::Duration::from_secs)
        .map_err(|v| v.message)
}
