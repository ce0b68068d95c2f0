//! Command-line definitions (clap derive): one argument struct per command. The contract is
//! docs/cli.md.

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

/// Flags before the command. `--no-color` and `-v` apply to every command and are accepted after
/// it too; the spec and AWS flags are accepted here (`streamstack --region R gc`, as
/// docs/cli.md#global-flags writes them) and, after the command, only by the commands that use
/// them ([`SpecArgs`], [`AwsArgs`]).
#[derive(Debug, Clone, Default, Args)]
pub struct Global {
    #[command(flatten)]
    pub spec: SpecArgs,

    #[command(flatten)]
    pub connection: Connection,

    /// Request budget: `aws` keeps every AWS call under AWS's documented per-operation request
    /// quotas (Kinesis, Firehose: 5 per second...), so AWS never throttles; `off` sends as fast
    /// as it can, for emulators without quotas (moto, LocalStack).
    #[arg(
        long,
        value_name = "aws|off",
        env = "STREAMSTACK_API_BUDGET",
        default_value = "aws"
    )]
    pub api_budget: crate::budget::BudgetMode,

    /// Disable colours (also NO_COLOR).
    #[arg(long, global = true)]
    pub no_color: bool,

    /// Print more detail (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

/// The flags of the commands that read a spec.
#[derive(Debug, Clone, Default, Args)]
pub struct SpecArgs {
    /// Set a template variable (overrides `vars:` in the spec); repeatable.
    #[arg(long = "var", value_name = "NAME=VALUE", value_parser = parse_var)]
    pub vars: Vec<(String, String)>,
}

/// Where AWS is and as whom.
#[derive(Debug, Clone, Default, Args)]
pub struct Connection {
    /// AWS region, when the spec has no `region:` (also AWS_REGION / AWS_DEFAULT_REGION).
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,

    /// AWS shared-config profile (also AWS_PROFILE).
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,

    /// Send every AWS call to this endpoint, e.g. a local emulator (also AWS_ENDPOINT_URL).
    /// S3 then uses path-style addressing.
    #[arg(long, value_name = "URL")]
    pub endpoint_url: Option<String>,
}

/// The flags of the commands that read a spec and call AWS.
#[derive(Debug, Clone, Default, Args)]
pub struct OnlineArgs {
    #[command(flatten)]
    pub spec_args: SpecArgs,
    #[command(flatten)]
    pub aws: AwsArgs,
}

impl OnlineArgs {
    fn shared(&self) -> (Option<&SpecArgs>, Option<&AwsArgs>) {
        (Some(&self.spec_args), Some(&self.aws))
    }
}

/// How to reach AWS: the flags of the commands that call it.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "AWS connection")]
pub struct AwsArgs {
    #[command(flatten)]
    pub connection: Connection,

    /// Request budget: `aws` keeps every AWS call under AWS's documented per-operation request
    /// quotas, so AWS never throttles; `off` sends as fast as it can, for emulators without
    /// quotas (moto, LocalStack). Also STREAMSTACK_API_BUDGET.
    #[arg(long, value_name = "aws|off")]
    pub api_budget: Option<crate::budget::BudgetMode>,
}

impl Cli {
    /// The flags given before the command merged with those given after it: `--var`s add up;
    /// a region, profile or endpoint given in both places must be the same.
    pub fn effective_global(&self) -> Result<Global, String> {
        let mut g = self.global.clone();
        let (spec, aws) = self.command.shared_args();
        if let Some(spec) = spec {
            g.spec.vars.extend(spec.vars.iter().cloned());
        }
        if let Some(aws) = aws {
            let (before, after) = (&mut g.connection, &aws.connection);
            for (flag, before, after) in [
                ("--region", &mut before.region, &after.region),
                ("--profile", &mut before.profile, &after.profile),
                (
                    "--endpoint-url",
                    &mut before.endpoint_url,
                    &after.endpoint_url,
                ),
            ] {
                match (before.as_ref(), after) {
                    (Some(b), Some(a)) if b != a => {
                        return Err(format!(
                            "{flag} is given twice with different values ({b:?} before the command, {a:?} after it)"
                        ))
                    }
                    (_, Some(a)) => *before = Some(a.clone()),
                    _ => {}
                }
            }
            // The one before the command may come from STREAMSTACK_API_BUDGET: the flag after
            // the command wins.
            if let Some(b) = aws.api_budget {
                g.api_budget = b;
            }
        }
        Ok(g)
    }
}

impl Command {
    /// The spec and AWS flags this command takes, if any.
    pub fn shared_args(&self) -> (Option<&SpecArgs>, Option<&AwsArgs>) {
        match self {
            Command::Validate(a) => (Some(&a.spec_args), None),
            Command::Render(a) => (Some(&a.spec_args), None),
            Command::Plan(a) => a.online.shared(),
            Command::Apply(a) => a.online.shared(),
            Command::Check(a) => a.online.shared(),
            Command::Destroy(a) => a.online.shared(),
            Command::ForceUnlock(a) => a.online.shared(),
            Command::Output(a) => a.online.shared(),
            Command::Stacks(a) => (None, Some(&a.aws)),
            Command::Gc(a) => (None, Some(&a.aws)),
            Command::Schema | Command::Completions(_) => (None, None),
            Command::Init(a) => (None, Some(&a.aws)),
            Command::Adopt(a) => a.online.shared(),
            Command::Tail(a) => a.online.shared(),
        }
    }
}

/// The commands, each with its own argument struct.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check spec files offline (no credentials, no network); every error with FILE:LINE:COL.
    Validate(ValidateArgs),
    /// Print what would be sent to AWS: user-data, agent.json, IAM policies, or the whole stack
    /// as a CloudFormation template.
    Render(RenderArgs),
    /// Compare the spec with what is live in AWS and show what apply would change.
    Plan(PlanArgs),
    /// Make AWS match the spec (or a plan saved with `plan --out`).
    Apply(ApplyArgs),
    /// Verify the running pipeline hop by hop (hosts, streams, deliveries) and name the first
    /// broken hop.
    Check(CheckArgs),
    /// Delete everything the stack owns (tagged streamstack:stack), buckets included.
    Destroy(DestroyArgs),
    /// Remove a stack's lock left by a run that died (its id is in the "locked" message).
    ForceUnlock(ForceUnlockArgs),
    /// List every stack in the region (found by the streamstack:stack tag), with its expiry.
    Stacks(StacksArgs),
    /// Destroy every stack in the region whose streamstack:expires-at has passed.
    Gc(GcArgs),
    /// Show ids, ARNs, where data lands and how to reach the hosts.
    Output(OutputArgs),
    /// Print the JSON Schema of the spec (for yaml-language-server and editors).
    Schema,
    /// Write a commented, valid starting spec.
    Init(InitArgs),
    /// Print a shell completion script (source it from your shell's startup file).
    Completions(CompletionsArgs),
    /// Take over resources that match the spec by physical name but carry no streamstack tags
    /// (made in the console): tag them as the stack's, after showing exactly what changes.
    Adopt(AdoptArgs),
    /// Watch the records flow through one hop: a stream's records, the objects a delivery
    /// writes (and its errors), or a host's console and bootstrap.
    Tail(TailArgs),
}

// `validate SPEC...`
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Spec files to check.
    #[arg(required = true, value_name = "SPEC")]
    pub specs: Vec<PathBuf>,
    /// How to print diagnostics: auto (human with source snippets on a terminal, one line
    /// each otherwise), human (always with snippets), json, or github (::error annotations).
    #[arg(long, value_enum, default_value_t = ValidateFormat::Auto, value_name = "FORMAT")]
    pub format: ValidateFormat,
    #[command(flatten)]
    pub spec_args: SpecArgs,
}

// `render SPEC [--host NAME] [--what ...]`
#[derive(Debug, Args)]
pub struct RenderArgs {
    /// The spec file.
    #[arg(value_name = "SPEC")]
    pub spec: PathBuf,
    /// The host to render, when the spec has several.
    #[arg(long, value_name = "NAME")]
    pub host: Option<String>,
    /// What to render.
    #[arg(long, value_enum, default_value_t = What::UserData)]
    pub what: What,
    /// With --what operator-policy: the commands the policy is for (plan: read-only; apply:
    /// apply, check and destroy).
    #[arg(long = "for", value_enum, value_name = "COMMANDS", default_value_t = PolicyFor::Apply)]
    pub for_commands: PolicyFor,
    /// With --what agent-bundle: the directory the bundle's files are written to.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub spec_args: SpecArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PolicyFor {
    /// plan (read-only).
    Plan,
    /// apply, check and destroy.
    Apply,
}

// `plan SPEC [--format FORMAT | --json] [--out FILE] [--detailed-exitcode] [--engine ENGINE]`
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The spec file.
    #[arg(value_name = "SPEC")]
    pub spec: PathBuf,
    #[command(flatten)]
    pub engine: EngineArg,
    /// Print the plan as JSON (same as --format json; shape documented in README.md).
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
    /// How to print the plan: human, json, or markdown (for pull-request comments).
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub format: Option<PlanFormat>,
    /// Save the plan to FILE for `apply FILE`.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Exit 0 when there are no changes, 2 when there are, 1 on error.
    #[arg(long)]
    pub detailed_exitcode: bool,
    #[command(flatten)]
    pub online: OnlineArgs,
    #[command(flatten)]
    pub fleet: FleetArgs,
    /// Prices of the cost estimate: live (the AWS Price List API, then cached), cached (the
    /// default: the cache of a live run, else the offline snapshot) or offline (the snapshot).
    #[arg(long, value_enum, value_name = "SOURCE")]
    pub prices: Option<crate::cost::PricesMode>,
}

impl PlanArgs {
    /// The output format: `--json` is `--format json`; human by default.
    pub fn output(&self) -> PlanFormat {
        if self.json {
            PlanFormat::Json
        } else {
            self.format.unwrap_or(PlanFormat::Human)
        }
    }
}

// `apply SPEC|PLANFILE [--auto-approve] [--json] [--parallelism N] [--lock-timeout DUR]
// [--wait-bootstrap [DUR]] [--engine ENGINE]`
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// A spec file, or a plan file from `plan --out`.
    #[arg(value_name = "SPEC|PLANFILE")]
    pub target: PathBuf,
    #[command(flatten)]
    pub change: ChangeArgs,
    /// Maximum number of operations at once (AWS's request rates are kept by the request
    /// budget, not by this bound).
    #[arg(long, default_value_t = crate::executor::DEFAULT_PARALLELISM, value_name = "N")]
    pub parallelism: usize,
    /// Also wait until new or replaced hosts report their bootstrap (default 10m).
    #[arg(long, value_name = "DUR", num_args = 0..=1, default_missing_value = "10m", value_parser = parse_duration)]
    pub wait_bootstrap: Option<std::time::Duration>,
    /// Where external hosts' access keys are written: DIR/credentials, an AWS
    /// shared-credentials file (mode 0600) with a profile per host. Keys go nowhere else.
    #[arg(long, value_name = "DIR")]
    pub credentials_dir: Option<PathBuf>,
    /// Replace each external host's access key: create a new one, write it, then delete the
    /// old one.
    #[arg(long)]
    pub rotate_keys: bool,
    #[command(flatten)]
    pub engine: EngineArg,
    #[command(flatten)]
    pub online: OnlineArgs,
    #[command(flatten)]
    pub fleet: FleetArgs,
}

// What `apply` and `destroy` share: approval, output and the lock.
#[derive(Debug, Clone, Args)]
pub struct ChangeArgs {
    /// Do not ask for confirmation.
    #[arg(long)]
    pub auto_approve: bool,
    /// Print the plan and progress events as JSON lines.
    #[arg(long)]
    pub json: bool,
    /// Wait this long for another run's lock on the stack (default: fail at once).
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub lock_timeout: Option<std::time::Duration>,
}

// `--engine`: which engine deploys.
#[derive(Debug, Clone, Copy, Args)]
pub struct EngineArg {
    /// Which engine deploys: streamstack's own, or CloudFormation (one stack named after
    /// the stack, through change sets).
    #[arg(long = "engine", value_enum, default_value_t = Engine::Streamstack, value_name = "ENGINE")]
    pub engine: Engine,
    /// With --engine stacksets: who deploys the instances (default self-managed: the standard
    /// administration and execution roles; service-managed: Organizations OUs).
    #[arg(long = "permission-model", value_enum, value_name = "MODEL")]
    pub permission_model: Option<PermissionModelArg>,
}

/// `--permission-model`: a stack set's permission model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PermissionModelArg {
    SelfManaged,
    ServiceManaged,
}

impl From<PermissionModelArg> for crate::cloudformation::stacksets::PermissionModel {
    fn from(p: PermissionModelArg) -> Self {
        match p {
            PermissionModelArg::SelfManaged => Self::SelfManaged,
            PermissionModelArg::ServiceManaged => Self::ServiceManaged,
        }
    }
}

// `check SPEC [--put N] [--timeout DUR] [--json]`
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The spec file.
    #[arg(value_name = "SPEC")]
    pub spec: PathBuf,
    /// Write N test records (JSON, with a run id) into every stream and direct delivery
    /// first, and wait until they reach S3.
    #[arg(long, value_name = "N")]
    pub put: Option<u32>,
    /// How long to wait for every hop to pass (default: look once; with --put, 5m).
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub timeout: Option<std::time::Duration>,
    /// Print the report as one JSON object (the last stdout line).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub online: OnlineArgs,
    #[command(flatten)]
    pub fleet: FleetArgs,
}

// `destroy (SPEC | --stack NAME) [--auto-approve] [--json] [--lock-timeout DUR] [--engine ENGINE]`
#[derive(Debug, Args)]
pub struct DestroyArgs {
    /// The spec file of the stack.
    #[arg(
        value_name = "SPEC",
        required_unless_present = "stack",
        conflicts_with = "stack"
    )]
    pub spec: Option<PathBuf>,
    /// Destroy the stack of this name, without its spec file (found by its tag).
    #[arg(long, value_name = "NAME")]
    pub stack: Option<String>,
    #[command(flatten)]
    pub change: ChangeArgs,
    #[command(flatten)]
    pub engine: EngineArg,
    #[command(flatten)]
    pub online: OnlineArgs,
    #[command(flatten)]
    pub fleet: FleetArgs,
}

// `force-unlock SPEC LOCK_ID`
#[derive(Debug, Args)]
pub struct ForceUnlockArgs {
    /// The spec file of the stack.
    #[arg(value_name = "SPEC")]
    pub spec: PathBuf,
    /// The lock's id.
    #[arg(value_name = "LOCK_ID")]
    pub lock_id: String,
    #[command(flatten)]
    pub online: OnlineArgs,
}

// `stacks [--json]`
#[derive(Debug, Args)]
pub struct StacksArgs {
    /// Print the list as JSON.
    #[arg(long)]
    pub json: bool,
    /// Prices of each stack's rate: live, cached (the default) or offline (see plan --prices).
    #[arg(long, value_enum, value_name = "SOURCE")]
    pub prices: Option<crate::cost::PricesMode>,
    #[command(flatten)]
    pub aws: AwsArgs,
    #[command(flatten)]
    pub fleet: FleetArgs,
}

// `gc [--dry-run] [--auto-approve] [--json]`
#[derive(Debug, Args)]
pub struct GcArgs {
    /// Only list the expired stacks.
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub auto_approve: bool,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub aws: AwsArgs,
    #[command(flatten)]
    pub fleet: FleetArgs,
}

// `output SPEC [--json]`
#[derive(Debug, Args)]
pub struct OutputArgs {
    /// The spec file of the stack.
    #[arg(value_name = "SPEC")]
    pub spec: PathBuf,
    /// Print the outputs as one JSON object.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub online: OnlineArgs,
    #[command(flatten)]
    pub fleet: FleetArgs,
}

// `init [--example NAME] [--force] [PATH]`
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Which example to start from.
    #[arg(long, value_enum, default_value_t = Example::WeatherLab)]
    pub example: Example,
    /// Overwrite the file if it exists.
    #[arg(long)]
    pub force: bool,
    /// Where to write it.
    #[arg(value_name = "PATH", default_value = "stack.yaml")]
    pub path: PathBuf,
    /// Describe live resources instead of an example: the delivery streams given with
    /// --delivery (and the stream, bucket, role and error logging each uses) and the instances
    /// given with --instance. Every physical name is kept, so `adopt` can take them over.
    #[arg(long, conflicts_with = "example")]
    pub from_live: bool,
    /// With --from-live: a Firehose delivery stream to describe (repeatable).
    #[arg(long = "delivery", value_name = "NAME", requires = "from_live")]
    pub deliveries: Vec<String>,
    /// With --from-live: an EC2 instance id to describe (repeatable).
    #[arg(long = "instance", value_name = "ID", requires = "from_live")]
    pub instances: Vec<String>,
    /// With --from-live: the spec's `stack:` (default: from the first delivery's name).
    #[arg(long, value_name = "NAME", requires = "from_live")]
    pub stack: Option<String>,
    #[command(flatten)]
    pub aws: AwsArgs,
}

// `adopt SPEC [--auto-approve] [--allow-replace] [--json]`
#[derive(Debug, Args)]
pub struct AdoptArgs {
    /// The spec whose resources (by physical name) to take over.
    #[arg(value_name = "SPEC")]
    pub spec: PathBuf,
    /// Adopt without asking for confirmation.
    #[arg(long)]
    pub auto_approve: bool,
    /// Adopt resources whose differences from the spec force a replacement (apply replaces
    /// them); without it, such a difference stops adopt before any change.
    #[arg(long)]
    pub allow_replace: bool,
    /// Print the adopt plan and the report as JSON (NDJSON lines).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub online: OnlineArgs,
}

// `completions SHELL`
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
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
pub enum Engine {
    /// streamstack's own engine: AWS API calls, in parallel, with its own waits.
    Streamstack,
    /// A CloudFormation stack named after the stack, deployed through change sets.
    Cloudformation,
    /// A CloudFormation StackSet named after the stack, one instance per fleet target (needs
    /// --fleet).
    Stacksets,
}

impl From<Engine> for crate::deploy::Engine {
    fn from(e: Engine) -> Self {
        match e {
            Engine::Streamstack => crate::deploy::Engine::Streamstack,
            Engine::Cloudformation => crate::deploy::Engine::Cloudformation,
            Engine::Stacksets => crate::deploy::Engine::Stacksets,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PlanFormat {
    Human,
    Json,
    Markdown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ValidateFormat {
    /// Human lines; with source snippets when stderr is a terminal.
    Auto,
    /// Human lines, each with its source line, a caret under the span, and the help.
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
    /// The least-privilege IAM policy of whoever runs streamstack for this spec (JSON).
    OperatorPolicy,
    /// Everything to install the agent on an external host (--host KEY --out DIR):
    /// agent.json, install.sh, README.md.
    AgentBundle,
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

// `tail SPEC (stream.KEY|delivery.KEY|host.KEY) [--from-start | --since DUR] [--max N]
//  [--timeout DUR] [--json] [--grep REGEX] [--pretty]`
#[derive(Debug, Args)]
pub struct TailArgs {
    /// The spec file.
    #[arg(value_name = "SPEC")]
    pub spec: PathBuf,
    /// What to watch: stream.KEY, delivery.KEY or host.KEY.
    #[arg(value_name = "TARGET")]
    pub target: String,
    /// Start at the oldest record still retained (TRIM_HORIZON; a delivery: every object).
    #[arg(long, conflicts_with = "since")]
    pub from_start: bool,
    /// Start this long ago (AT_TIMESTAMP; a delivery: objects written since).
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub since: Option<std::time::Duration>,
    /// Stop after N printed records (exit 0).
    #[arg(long, value_name = "N")]
    pub max: Option<u64>,
    /// Stop after this long (exit 0).
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub timeout: Option<std::time::Duration>,
    /// One JSON object per record: shard, sequence, partition_key, arrival, data.
    #[arg(long)]
    pub json: bool,
    /// Print only records whose decoded data matches REGEX.
    #[arg(long, value_name = "REGEX")]
    pub grep: Option<String>,
    /// Indent JSON data.
    #[arg(long)]
    pub pretty: bool,
    #[command(flatten)]
    pub online: OnlineArgs,
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    crate::spec::rules::duration(s)
        .map(std::time::Duration::from_secs)
        .map_err(|v| v.message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn all_commands(cmd: &clap::Command) -> Vec<clap::Command> {
        let mut out = vec![cmd.clone()];
        for sub in cmd.get_subcommands() {
            out.extend(all_commands(sub));
        }
        out
    }

    #[test]
    fn every_flag_and_argument_has_help_text() {
        let mut missing = Vec::new();
        for cmd in all_commands(&Cli::command()) {
            for arg in cmd.get_arguments() {
                let builtin = matches!(arg.get_id().as_str(), "help" | "version");
                if !builtin && arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{} {}", cmd.get_name(), arg.get_id()));
                }
            }
            if cmd.get_name() != "streamstack" && cmd.get_about().is_none() {
                missing.push(format!("{} (the command itself)", cmd.get_name()));
            }
        }
        assert!(missing.is_empty(), "no help text: {missing:?}");
    }

    fn help_of(command: &str) -> String {
        let mut cli = Cli::command();
        cli.build();
        cli.find_subcommand_mut(command)
            .map(|c| c.render_long_help().to_string())
            .unwrap_or_else(|| panic!("no command {command}"))
    }

    #[test]
    fn commands_show_only_the_flags_they_use() {
        let aws = ["--region", "--profile", "--endpoint-url", "--api-budget"];
        // (`init` takes them for `init --from-live`, which reads AWS.)
        for offline in ["schema", "validate", "render", "completions"] {
            let help = help_of(offline);
            for flag in aws {
                assert!(
                    !help.contains(flag),
                    "{offline} --help lists {flag}:\n{help}"
                );
            }
        }
        for no_spec in ["schema", "init", "completions", "stacks", "gc"] {
            assert!(!help_of(no_spec).contains("--var"), "{no_spec} lists --var");
        }
        for online in [
            "plan",
            "apply",
            "destroy",
            "check",
            "output",
            "force-unlock",
            "stacks",
            "gc",
            "init",
            "adopt",
            "tail",
        ] {
            let help = help_of(online);
            for flag in aws {
                assert!(help.contains(flag), "{online} --help lacks {flag}");
            }
        }
        // Offline commands refuse the AWS flags after the command, as a usage error.
        assert!(Cli::try_parse_from(["streamstack", "schema", "--region", "x"]).is_err());
        assert!(
            Cli::try_parse_from(["streamstack", "validate", "s.yaml", "--profile", "p"]).is_err()
        );
    }

    fn parse(line: &str) -> Result<Global, String> {
        let cli =
            Cli::try_parse_from(line.split_whitespace()).map_err(|e| format!("{line}: {e}"))?;
        cli.effective_global()
    }

    #[test]
    fn the_request_budget_is_taken_before_or_after_the_command() {
        use crate::budget::BudgetMode;
        for line in [
            "streamstack --api-budget off plan s.yaml",
            "streamstack plan s.yaml --api-budget off",
            "streamstack --api-budget aws gc --api-budget off",
        ] {
            assert_eq!(
                parse(line).map(|g| g.api_budget),
                Ok(BudgetMode::Off),
                "{line}"
            );
        }
        assert_eq!(
            parse("streamstack --api-budget off stacks --api-budget aws").map(|g| g.api_budget),
            Ok(BudgetMode::Aws)
        );
    }

    #[test]
    fn every_form_in_the_contract_parses() {
        for line in [
            "streamstack validate a.yaml b.yaml",
            "streamstack validate a.yaml --format github",
            "streamstack validate a.yaml --format json",
            "streamstack validate a.yaml --format human",
            "streamstack render s.yaml --host collector --what user-data",
            "streamstack render s.yaml --what agent-config",
            "streamstack render s.yaml --what policies",
            "streamstack render s.yaml --what cloudformation",
            "streamstack plan s.yaml --json --out p.json --detailed-exitcode",
            "streamstack plan s.yaml --format markdown",
            "streamstack apply s.yaml --auto-approve --json",
            "streamstack apply p.json --wait-bootstrap --lock-timeout 5m",
            "streamstack apply s.yaml --wait-bootstrap 15m",
            "streamstack destroy s.yaml --auto-approve --json --lock-timeout 1m",
            "streamstack destroy --stack weather-lab --auto-approve",
            "streamstack output s.yaml --json",
            "streamstack schema",
            "streamstack check s.yaml --put 20 --timeout 5m --json",
            "streamstack force-unlock s.yaml abc123",
            "streamstack stacks --json",
            "streamstack gc --dry-run --auto-approve --json",
            "streamstack init --example classroom --force my.yaml",
            "streamstack completions zsh",
            "streamstack plan s.yaml --engine cloudformation",
            "streamstack apply s.yaml --engine cloudformation --auto-approve",
            "streamstack destroy s.yaml --engine cloudformation --auto-approve",
            "streamstack destroy --stack weather-lab --engine streamstack",
            "streamstack plan s.yaml --engine stacksets --permission-model service-managed",
            "streamstack destroy s.yaml --engine stacksets --permission-model self-managed --auto-approve",
            "streamstack tail s.yaml stream.weather --from-start --max 60 --timeout 2m --json",
            "streamstack tail s.yaml delivery.archive --since 10m --grep Seoul --pretty",
            "streamstack tail s.yaml host.collector --region eu-west-1",
            // The global flags, before the command (docs/cli.md#global-flags) and after it.
            "streamstack --var a=b --region eu-west-1 --profile p --endpoint-url http://127.0.0.1:5000 --no-color -v plan s.yaml",
            "streamstack plan s.yaml --var a=b --region eu-west-1 --profile p --endpoint-url http://127.0.0.1:5000 --no-color -v",
            "streamstack --region ap-northeast-2 gc --auto-approve",
            "streamstack --var a=b validate s.yaml",
            "streamstack validate s.yaml --var a=b --no-color",
            "streamstack schema --no-color -vv",
            "streamstack init --from-live --region eu-west-1 --delivery a --delivery b --instance i-1 --stack lab lab.yaml",
            "streamstack adopt s.yaml --auto-approve --allow-replace --json",
        ] {
            parse(line).unwrap_or_else(|e| panic!("{e}"));
        }
        let g = parse("streamstack --var a=1 --region eu-west-1 plan s.yaml --var b=2 --endpoint-url http://e")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            g.spec.vars,
            [("a".into(), "1".into()), ("b".into(), "2".into())]
        );
        assert_eq!(g.connection.region.as_deref(), Some("eu-west-1"));
        assert_eq!(g.connection.endpoint_url.as_deref(), Some("http://e"));
        assert!(parse("streamstack --region a-1 plan s.yaml --region b-2")
            .is_err_and(|e| e.contains("--region")));
        assert!(parse("streamstack --region a-1 plan s.yaml --region a-1").is_ok());
        // The --from-live flags only with --from-live; an example is not live.
        assert!(parse("streamstack init --delivery a").is_err());
        assert!(parse("streamstack init --from-live --example classroom").is_err());
    }
}

// `--fleet FLEET [--targets-in-flight N] [--failure-tolerance N] [--only TARGET...]
// [--retry-failed]`: the command in every target of a fleet file (docs/cli.md#fleets).
#[derive(Debug, Clone, Args)]
pub struct FleetArgs {
    /// Run in every target (ACCOUNT/REGION) of this fleet file: assume each target's role,
    /// the target's region replacing the spec's `region:`.
    #[arg(long, value_name = "FLEET")]
    pub fleet: Option<PathBuf>,
    /// Targets worked on at once.
    #[arg(long, value_name = "N", default_value_t = 8, requires = "fleet")]
    pub targets_in_flight: usize,
    /// Once more than N targets failed, skip the targets not yet started (default: go on).
    #[arg(long, value_name = "N", requires = "fleet")]
    pub failure_tolerance: Option<usize>,
    /// Only these targets: ACCOUNT/REGION, an account id or a target's name.
    #[arg(long, value_name = "TARGET", num_args = 1.., requires = "fleet")]
    pub only: Vec<String>,
    /// Only the targets that did not succeed in the last run's report.
    #[arg(long, requires = "fleet")]
    pub retry_failed: bool,
}
