//! AWS access: client construction (region chain, profile, endpoint override, S3 path-style),
//! the call log every client shares, and [`AwsError`], which keeps what AWS said (service,
//! operation, error code, HTTP status, request id) exactly as it said it.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeTransmitInterceptorContextMut, FinalizerInterceptorContextRef,
};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::{HttpResponse, Metadata};
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::client::retries::RequestAttempts;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use aws_types::request_id::RequestId;

use crate::budget::{Budget, BudgetMode, BudgetedHttpClient, GateClosed, OperationName, Ungated};
pub use crate::error::{AwsError, Failure};

/// How to reach AWS, from the global flags.
#[derive(Debug, Clone, Default)]
pub struct AwsOptions {
    pub region: Option<String>,
    pub profile: Option<String>,
    /// `--endpoint-url` or `AWS_ENDPOINT_URL`: every client goes there.
    pub endpoint_url: Option<String>,
    /// `--api-budget`: keep to AWS's request quotas (the default) or not (emulators).
    pub api_budget: BudgetMode,
}

/// One client per service, all on the same configuration and the same call log.
#[derive(Clone)]
pub struct Clients {
    pub sts: aws_sdk_sts::Client,
    pub iam: aws_sdk_iam::Client,
    pub ec2: aws_sdk_ec2::Client,
    pub kinesis: aws_sdk_kinesis::Client,
    pub firehose: aws_sdk_firehose::Client,
    pub s3: aws_sdk_s3::Client,
    pub ssm: aws_sdk_ssm::Client,
    pub logs: aws_sdk_cloudwatchlogs::Client,
    pub tagging: aws_sdk_resourcegroupstagging::Client,
    pub cloudformation: aws_sdk_cloudformation::Client,
    /// AWS Organizations (a fleet's organizational units).
    pub organizations: aws_sdk_organizations::Client,
    /// Service Quotas (a fleet's pre-flight).
    pub servicequotas: aws_sdk_servicequotas::Client,
    /// The Price List Query API (for cost estimates), always asked in us-east-1 (one of its three
    /// endpoints) whatever the stack's region; two attempts, since prices never fail a plan.
    pub pricing: aws_sdk_pricing::Client,
    pub region: String,
    /// The clients talk to an endpoint other than AWS's own (`--endpoint-url`: an emulator),
    /// whose coverage of AWS's APIs may be partial (moto's tagging API skips Kinesis).
    pub custom_endpoint: bool,
    /// The request budget every client above shares (and its count of writes).
    pub budget: std::sync::Arc<Budget>,
    /// Who the credentials are (account, ARN), asked of STS once per process.
    caller: std::sync::Arc<tokio::sync::OnceCell<Caller>>,
}

/// The identity STS answers for the credentials.
#[derive(Debug, Clone)]
struct Caller {
    account: String,
    arn: String,
}

impl Clients {
    /// Builds clients from the SDK's configuration chain plus the overrides in `opts`.
    pub async fn new(opts: &AwsOptions) -> Result<Clients, crate::Error> {
        Clients::with_credentials(opts, None).await
    }

    /// Clients in `region` with the temporary credentials AssumeRole returned (a fleet's
    /// target account); everything else (endpoint, budget mode, retries) as `opts` says. Each
    /// call makes a new request budget: AWS's quotas are per account and region.
    pub async fn assumed(
        opts: &AwsOptions,
        region: &str,
        credentials: aws_sdk_sts::config::Credentials,
    ) -> Result<Clients, crate::Error> {
        let opts = AwsOptions {
            region: Some(region.to_string()),
            ..opts.clone()
        };
        Clients::with_credentials(&opts, Some(credentials)).await
    }

    async fn with_credentials(
        opts: &AwsOptions,
        credentials: Option<aws_sdk_sts::config::Credentials>,
    ) -> Result<Clients, crate::Error> {
        // Standard retries (exponential backoff with jitter) rather than adaptive: adaptive mode
        // slows the whole client for seconds after one throttled answer, and streamstack keeps
        // to the control-plane quotas itself. Eight attempts ride out bursts of throttling,
        // 5xx and lost answers.
        let mut loader = aws_config::defaults(BehaviorVersion::latest()).retry_config(
            RetryConfig::standard()
                .with_max_attempts(8)
                .with_initial_backoff(Duration::from_millis(200))
                .with_max_backoff(Duration::from_secs(5)),
        );
        if let Some(r) = &opts.region {
            loader = loader.region(Region::new(r.clone()));
        }
        if let Some(p) = &opts.profile {
            loader = loader.profile_name(p);
        }
        let endpoint = opts
            .endpoint_url
            .clone()
            .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok())
            .filter(|e| !e.is_empty());
        if let Some(e) = &endpoint {
            loader = loader.endpoint_url(e);
        }
        // The SDK's own HTTPS client reads the system's root certificates when it is made,
        // about 10 ms of every command's start; this one is made at its first HTTPS request
        // (never, against a plain-HTTP emulator with keys in the environment).
        loader = loader.http_client(LazyHttpsClient::shared());
        if let Some(c) = credentials {
            loader = loader.credentials_provider(c);
        }
        let conf = loader.load().await;
        Clients::from_sdk_config_with_budget(&conf, endpoint.is_some(), opts.api_budget)
    }

    /// Clients over an existing SDK configuration; `custom_endpoint` turns on S3 path-style.
    /// Requests keep to AWS's quotas ([`BudgetMode::Aws`]).
    pub fn from_sdk_config(
        conf: &aws_config::SdkConfig,
        custom_endpoint: bool,
    ) -> Result<Clients, crate::Error> {
        Clients::from_sdk_config_with_budget(conf, custom_endpoint, BudgetMode::Aws)
    }

    /// [`Clients::from_sdk_config`] with the given request budget, which every client shares
    /// (see `crate::budget`).
    pub fn from_sdk_config_with_budget(
        conf: &aws_config::SdkConfig,
        custom_endpoint: bool,
        budget: BudgetMode,
    ) -> Result<Clients, crate::Error> {
        let region = conf.region().map(|r| r.to_string()).ok_or_else(|| {
            crate::Error::Config(
                "no AWS region: set region: in the spec, --region, or AWS_REGION".into(),
            )
        })?;
        // One HTTP client for every service (one connection pool), behind one budget.
        let budget = std::sync::Arc::new(Budget::new(budget));
        // A plain-HTTP endpoint (a local emulator) needs no TLS: the SDK's default client would
        // load the system's root certificates first, about 10 ms of every command's start.
        let plain_http = conf
            .endpoint_url()
            .is_some_and(|u| u.to_ascii_lowercase().starts_with("http://"));
        let inner = match conf.http_client() {
            _ if plain_http => aws_smithy_http_client::Builder::new().build_http(),
            Some(c) => c,
            None => LazyHttpsClient::shared(),
        };
        let http = BudgetedHttpClient::new(inner, std::sync::Arc::clone(&budget));
        macro_rules! client {
            ($sdk:ident) => {
                $sdk::Client::from_conf(
                    $sdk::config::Builder::from(conf)
                        .http_client(http.clone())
                        .interceptor(CallLog)
                        .build(),
                )
            };
        }
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(conf)
                .force_path_style(custom_endpoint)
                .http_client(http.clone())
                .interceptor(CallLog)
                .build(),
        );
        Ok(Clients {
            sts: client!(aws_sdk_sts),
            iam: client!(aws_sdk_iam),
            ec2: client!(aws_sdk_ec2),
            kinesis: client!(aws_sdk_kinesis),
            firehose: client!(aws_sdk_firehose),
            ssm: client!(aws_sdk_ssm),
            logs: client!(aws_sdk_cloudwatchlogs),
            tagging: client!(aws_sdk_resourcegroupstagging),
            cloudformation: client!(aws_sdk_cloudformation),
            organizations: client!(aws_sdk_organizations),
            servicequotas: client!(aws_sdk_servicequotas),
            pricing: aws_sdk_pricing::Client::from_conf(
                aws_sdk_pricing::config::Builder::from(conf)
                    .region(Region::new("us-east-1"))
                    .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(2))
                    .http_client(http.clone())
                    .interceptor(CallLog)
                    .build(),
            ),
            s3,
            region,
            custom_endpoint,
            budget,
            caller: Default::default(),
        })
    }

    /// The account the credentials belong to.
    pub async fn account_id(&self) -> Result<String, crate::Error> {
        Ok(self.caller().await?.account.clone())
    }

    /// The ARN of the caller (for the lock to name its holder).
    pub async fn caller_arn(&self) -> Result<String, crate::Error> {
        Ok(self.caller().await?.arn.clone())
    }

    /// `sts:GetCallerIdentity`, asked once: the account and the caller's ARN.
    async fn caller(&self) -> Result<&Caller, crate::Error> {
        self.caller.get_or_try_init(|| self.ask_caller()).await
    }

    async fn ask_caller(&self) -> Result<Caller, crate::Error> {
        let out = match self
            .sts
            .get_caller_identity()
            .send()
            .await
            .op("sts:GetCallerIdentity")
        {
            Ok(o) => o,
            // The SDK found no credentials anywhere: say so, and how to fix it, rather than
            // "dispatch failure".
            Err(crate::Error::Aws(e))
                if e.status().is_none() && e.message().to_lowercase().contains("credential") =>
            {
                return Err(crate::Error::Config(format!(
                    "no AWS credentials found. Tried: the environment (AWS_ACCESS_KEY_ID, \
                     AWS_SECRET_ACCESS_KEY), the shared config and credentials files (profile \
                     {}), SSO, and the instance or container role. Fix: export AWS_PROFILE=NAME \
                     (or --profile), run `aws configure` or `aws sso login`, or for a local \
                     emulator pass --endpoint-url http://127.0.0.1:PORT with dummy keys. ({})",
                    std::env::var("AWS_PROFILE").unwrap_or_else(|_| "default".into()),
                    e.message()
                )))
            }
            Err(e) => return Err(e),
        };
        let account = out.account.ok_or(crate::Error::Incomplete {
            operation: "sts:GetCallerIdentity",
            field: "Account",
        })?;
        Ok(Caller {
            account,
            arn: out.arn.unwrap_or_else(|| "unknown caller".into()),
        })
    }
}

/// The HTTPS client (hyper, rustls on ring, the system's root certificates), made at the first
/// request that needs it: making it reads the root certificates, about 10 ms.
#[derive(Debug, Default)]
struct LazyHttpsClient(std::sync::OnceLock<SharedHttpClient>);

impl LazyHttpsClient {
    fn shared() -> SharedHttpClient {
        SharedHttpClient::new(LazyHttpsClient::default())
    }
}

impl HttpClient for LazyHttpsClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        self.0
            .get_or_init(|| {
                use aws_smithy_http_client::tls;
                aws_smithy_http_client::Builder::new()
                    .tls_provider(tls::Provider::Rustls(
                        tls::rustls_provider::CryptoMode::Ring,
                    ))
                    .build_https()
            })
            .http_connector(settings, components)
    }
}

/// When the current attempt of an operation started (kept in the operation's config bag).
#[derive(Debug, Clone)]
struct AttemptStart(Instant);

impl Storable for AttemptStart {
    type Storer = StoreReplace<Self>;
}

/// Marks an operation's requests as the lock's own (`.customize().interceptor(LockCall)`): they
/// pass the write gate and are not counted as writes (see `crate::budget`).
#[derive(Debug)]
pub struct LockCall;

impl Intercept for LockCall {
    fn name(&self) -> &'static str {
        "streamstack::LockCall"
    }

    fn modify_before_transmit(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        context.request_mut().add_extension(Ungated);
        Ok(())
    }
}

/// The write gate's refusal inside an SDK error, if that is what it is.
fn gate_closed<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a GateClosed> {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(closed) = err.downcast_ref::<GateClosed>() {
            return Some(closed);
        }
        cur = err.source();
    }
    None
}

/// Logs every attempt of every AWS call: `-v` shows each call's service, operation, status and
/// milliseconds, and every retry with the reason the previous attempt failed.
#[derive(Debug)]
struct CallLog;

fn operation_name(cfg: &ConfigBag) -> (String, String) {
    cfg.load::<Metadata>()
        .map(|m| {
            (
                m.service().to_lowercase().replace(' ', ""),
                m.name().to_string(),
            )
        })
        .unwrap_or_else(|| ("aws".into(), "unknown".into()))
}

impl Intercept for CallLog {
    fn name(&self) -> &'static str {
        "streamstack::CallLog"
    }

    /// As each attempt starts: names the operation on the request, for the request budget
    /// (`crate::budget`); notes when the attempt started; logs it when it is a retry.
    fn modify_before_transmit(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let (service, operation) = operation_name(cfg);
        let attempt = cfg.load::<RequestAttempts>().map_or(1, |a| a.attempts());
        if attempt > 1 {
            tracing::info!(
                target: "streamstack::aws",
                "retry {service}:{operation} (attempt {attempt})"
            );
        }
        context
            .request_mut()
            .add_extension(OperationName { service, operation });
        cfg.interceptor_state()
            .store_put(AttemptStart(Instant::now()));
        Ok(())
    }

    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let (service, operation) = operation_name(cfg);
        let ms = cfg
            .load::<AttemptStart>()
            .map_or(0, |s| s.0.elapsed().as_millis());
        let attempt = cfg.load::<RequestAttempts>().map_or(1, |a| a.attempts());
        let status = context.response().map(|r| r.status().as_u16());
        match context.output_or_error() {
            Some(Err(e)) => {
                let why = error_chain(e);
                match status {
                    Some(s) => tracing::info!(
                        target: "streamstack::aws",
                        "{service}:{operation} -> {s} in {ms} ms (attempt {attempt}): {why}"
                    ),
                    None => tracing::info!(
                        target: "streamstack::aws",
                        "{service}:{operation} -> no answer after {ms} ms (attempt {attempt}): {why}"
                    ),
                }
            }
            _ => tracing::info!(
                target: "streamstack::aws",
                "{service}:{operation} -> {} in {ms} ms",
                status.map_or_else(|| "?".to_string(), |s| s.to_string())
            ),
        }
        Ok(())
    }
}

impl AwsError {
    pub fn from_sdk<E>(operation: &str, e: SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let request_id = e.request_id().map(str::to_string);
        let failure = match &e {
            SdkError::ServiceError(ctx) => {
                let err = ctx.err();
                let raw = ctx.raw();
                Failure::Service {
                    code: err
                        .code()
                        .map(str::to_string)
                        .or_else(|| xml_field(raw, "Code")),
                    message: err
                        .message()
                        .map(str::to_string)
                        .or_else(|| xml_field(raw, "Message")),
                    status: raw.status().as_u16(),
                    request_id,
                }
            }
            SdkError::ResponseError(ctx) => Failure::Service {
                code: xml_field(ctx.raw(), "Code"),
                message: xml_field(ctx.raw(), "Message").or_else(|| Some(error_chain(&e))),
                status: ctx.raw().status().as_u16(),
                request_id,
            },
            _ => Failure::Transport(error_chain(&e)),
        };
        AwsError {
            operation: operation.to_string(),
            failure,
        }
    }
}

/// The text of the first `<tag>...</tag>` of an error answer's body, if any and not empty: an
/// error the SDK could not read as its protocol's (an XML `<Error>` from an authorization layer
/// in front of a JSON service, such as an AccessDenied) still says what went wrong.
fn xml_field(raw: &HttpResponse, tag: &str) -> Option<String> {
    let body = String::from_utf8_lossy(raw.body().bytes()?);
    let start = body.find(&format!("<{tag}>"))? + tag.len() + 2;
    let len = body[start..].find(&format!("</{tag}>"))?;
    Some(body[start..start + len].trim().to_string()).filter(|t| !t.is_empty())
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let next = c.to_string();
        if !s.contains(&next) {
            s.push_str(": ");
            s.push_str(&next);
        }
        cur = c.source();
    }
    s
}

/// Shorthand for mapping an SDK result.
pub trait Ctx<T> {
    fn op(self, operation: &str) -> Result<T, crate::Error>;

    /// [`Ctx::op`] of a call whose answer carries nothing the caller needs.
    fn done(self, operation: &str) -> Result<(), crate::Error>
    where
        Self: Sized,
    {
        self.op(operation).map(|_| ())
    }
}

impl<T, E> Ctx<T> for Result<T, SdkError<E, HttpResponse>>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    fn op(self, operation: &str) -> Result<T, crate::Error> {
        self.map_err(|e| match gate_closed(&e) {
            // Not AWS's answer: the request was never sent, because the lock was lost.
            Some(closed) => crate::Error::Locked(format!("{operation} not sent: {closed}")),
            None => crate::Error::Aws(AwsError::from_sdk(operation, e)),
        })
    }
}

/// Sends `$request`, a fluent builder of the SDK crate `$sdk`, without the SDK's own retries:
/// for a create whose caller retries it, and must know whether an earlier attempt of its own
/// may have acted when the name turns out taken.
macro_rules! send_once {
    ($sdk:ident, $request:expr) => {
        $request
            .customize()
            .config_override(
                $sdk::config::Builder::default()
                    .retry_config(aws_config::retry::RetryConfig::disabled()),
            )
            .send()
    };
}
pub(crate) use send_once;

/// Every item of a paginated listing: [`first_pages`] without a limit.
pub async fn all_pages<C, T, F, Fut>(operation: &str, page: F) -> Result<Vec<T>, crate::Error>
where
    C: Clone + Eq + std::hash::Hash + std::fmt::Debug,
    F: FnMut(Option<C>) -> Fut,
    Fut: Future<Output = Result<(Vec<T>, Option<C>), crate::Error>>,
{
    first_pages(operation, usize::MAX, page).await
}

/// The items on the first `most` pages of a listing, in order. `page(None)` asks for the first
/// page and `page(Some(cursor))` for the one a cursor points at; each answers with its items
/// and the cursor of the next page (`None` after the last). A service that answers with a
/// cursor it was given before would be paged forever: that is an error naming `operation`.
pub async fn first_pages<C, T, F, Fut>(
    operation: &str,
    most: usize,
    mut page: F,
) -> Result<Vec<T>, crate::Error>
where
    C: Clone + Eq + std::hash::Hash + std::fmt::Debug,
    F: FnMut(Option<C>) -> Fut,
    Fut: Future<Output = Result<(Vec<T>, Option<C>), crate::Error>>,
{
    let mut items = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut cursor = None;
    for _ in 0..most {
        let (got, next) = page(cursor).await?;
        items.extend(got);
        let Some(next) = next else {
            break;
        };
        if !seen.insert(next.clone()) {
            return Err(crate::Error::Internal(format!(
                "{operation} answered with the page cursor {next:?} a second time: \
                 its listing would never end"
            )));
        }
        cursor = Some(next);
    }
    Ok(items)
}

/// [`first_pages`] of an SDK request: `$request` (a fluent builder, made anew for each page)
/// takes each page's cursor through its setter `$set` (`set_next_token`, `set_marker`...), is
/// sent as operation `$op`, and `|$out| $page` makes the answer into the page's items and the
/// next page's cursor. Every page; with `most: N`, the first N. (The SDK's builders share no
/// trait, so this is a macro.)
macro_rules! pages {
    ($op:expr, $request:expr, $set:ident, |$out:ident| $page:expr) => {
        $crate::aws::pages!($op, most: usize::MAX, $request, $set, |$out| $page)
    };
    ($op:expr, most: $most:expr, $request:expr, $set:ident, |$out:ident| $page:expr) => {
        $crate::aws::first_pages($op, $most, |cursor| {
            let request = $request.$set(cursor);
            async move {
                let $out = $crate::aws::Ctx::op(request.send().await, $op)?;
                Ok($page)
            }
        })
    };
}
pub(crate) use pages;

/// A next-page token as most services send it: an empty one means there is no next page.
pub fn next_token(token: Option<String>) -> Option<String> {
    token.filter(|t| !t.is_empty())
}

/// Every resource the Resource Groups Tagging API lists as tagged `key` (with the value `value`,
/// or with any value), with its tags, in the API's order.
pub async fn tagged_resources(
    clients: &Clients,
    key: &str,
    value: Option<&str>,
) -> Result<Vec<(String, BTreeMap<String, String>)>, crate::Error> {
    let filter = aws_sdk_resourcegroupstagging::types::TagFilter::builder()
        .key(key)
        .set_values(value.map(|v| vec![v.to_string()]))
        .build();
    let op = "tagging:GetResources";
    let request = || clients.tagging.get_resources().tag_filters(filter.clone());
    let mappings = pages!(
        op,
        request().resources_per_page(100),
        set_pagination_token,
        |out| (
            out.resource_tag_mapping_list.unwrap_or_default(),
            next_token(out.pagination_token)
        )
    )
    .await?;
    Ok(mappings
        .into_iter()
        .filter_map(|m| {
            let tags = m.tags.unwrap_or_default().into_iter();
            Some((m.resource_arn?, tags.map(|t| (t.key, t.value)).collect()))
        })
        .collect())
}

/// Exponential backoff with a ceiling, for retries of eventual-consistency errors.
pub fn backoff(attempt: u32) -> Duration {
    let ms = 500u64.saturating_mul(1 << attempt.min(5));
    Duration::from_millis(ms.min(10_000))
}

/// An S3 public access block with all four flags on: the stack's buckets (unless the spec says
/// otherwise) and the lock bucket.
pub fn all_public_access_blocked() -> aws_sdk_s3::types::PublicAccessBlockConfiguration {
    aws_sdk_s3::types::PublicAccessBlockConfiguration::builder()
        .block_public_acls(true)
        .ignore_public_acls(true)
        .block_public_policy(true)
        .restrict_public_buckets(true)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One page of a test listing: its items and the next page's cursor.
    type Page = (Vec<u32>, Option<&'static str>);

    /// A listing of `pages`, answered in turn.
    fn listing(
        pages: Vec<Page>,
    ) -> impl FnMut(Option<&'static str>) -> std::future::Ready<Result<Page, crate::Error>> {
        let mut pages = pages.into_iter();
        move |_| std::future::ready(Ok(pages.next().unwrap_or_default()))
    }

    #[tokio::test]
    async fn pages_are_read_until_there_is_no_next_one_or_enough() {
        let three = || {
            listing(vec![
                (vec![1, 2], Some("a")),
                (vec![3], Some("b")),
                (vec![4], None),
            ])
        };
        assert_eq!(all_pages("x:List", three()).await.unwrap(), [1, 2, 3, 4]);
        assert_eq!(first_pages("x:List", 2, three()).await.unwrap(), [1, 2, 3]);
        assert_eq!(
            first_pages("x:List", 0, three()).await.unwrap(),
            Vec::<u32>::new()
        );
    }

    #[tokio::test]
    async fn a_cursor_answered_twice_is_an_error_not_an_endless_listing() {
        let mut asked = 0;
        let forever = |_| {
            asked += 1;
            std::future::ready(Ok::<_, crate::Error>((vec![asked], Some("same"))))
        };
        let e = all_pages("kinesis:ListStreams", forever).await.unwrap_err();
        assert!(e.to_string().contains("kinesis:ListStreams"), "{e}");
        assert!(e.to_string().contains("\"same\""), "{e}");
        assert_eq!(asked, 2);
        // A cycle of several cursors is caught too.
        let cycle = listing(vec![
            (vec![1], Some("a")),
            (vec![2], Some("b")),
            (vec![3], Some("a")),
        ]);
        assert!(all_pages("x:List", cycle).await.is_err());
    }

    #[test]
    fn an_empty_token_ends_a_listing() {
        assert_eq!(next_token(Some(String::new())), None);
        assert_eq!(next_token(None), None);
        assert_eq!(next_token(Some("t".into())), Some("t".to_string()));
    }

    #[test]
    fn not_found_is_per_service_and_never_a_bare_404() {
        let e = |op: &str, code: Option<&str>, status| AwsError::service_error(op, code, status);
        assert!(e(
            "kinesis:DescribeStreamSummary",
            Some("ResourceNotFoundException"),
            400
        )
        .is_not_found());
        assert!(e("iam:GetRole", Some("NoSuchEntity"), 404).is_not_found());
        assert!(e("s3:HeadBucket", Some("NotFound"), 404).is_not_found());
        assert!(e("s3:GetBucketTagging", Some("NoSuchTagSet"), 404).is_not_found());
        // A 404 without a code: a wrong endpoint or a proxy, not "gone".
        assert!(!e("kinesis:DescribeStreamSummary", None, 404).is_not_found());
        assert!(!e("s3:HeadBucket", None, 404).is_not_found());
        // Codes of other services, or of other operations, do not count.
        assert!(!e("kinesis:DescribeStreamSummary", Some("NoSuchEntity"), 404).is_not_found());
        assert!(!e("s3:GetObject", Some("NotFound"), 404).is_not_found());
        assert!(!e("iam:GetRole", Some("ResourceNotFoundException"), 404).is_not_found());
    }
}
