//! What the realism proxy adds for fleets (`ProxyConfig::fleet`): Service Quotas, which moto
//! implements only for VPC, answered in AWS's wire format (JSON 1.1, `X-Amz-Target:
//! ServiceQuotasV20190624.*`) with per-account values a test sets; and AssumeRole refused
//! (`AccessDenied`, STS's XML error) for accounts a test chooses (moto never refuses it).
//!
//! The account of a Service Quotas request is the one its access key was issued for: the proxy
//! learns each key from AssumeRole's answer (the account of the role assumed).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{json, Value};

/// AWS's default values of the quotas the pre-flight reads through Service Quotas.
const AWS_DEFAULTS: &[(&str, &str, &str, f64)] = &[
    (
        "ec2",
        "L-1216C47A",
        "Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances",
        5.0,
    ),
    ("s3", "L-DC2B2D3D", "General purpose buckets", 10000.0),
];

/// Shared with the proxy's thread; a test changes it while the proxy runs.
#[derive(Clone, Debug, Default)]
pub struct FleetEmulation(Arc<Mutex<Inner>>);

#[derive(Debug, Default)]
struct Inner {
    /// (account, quota code) → applied value.
    quotas: HashMap<(String, String), f64>,
    denied: HashSet<String>,
    /// Access key id → the account AssumeRole issued it for.
    keys: HashMap<String, String>,
    /// Service Quotas calls answered, as `account:Action:code`.
    answered: Vec<String>,
}

/// An answer made up by the emulation: status, content type, body.
pub type Made = (u16, &'static str, String);

impl FleetEmulation {
    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// GetServiceQuota of `code` in `account` answers `value` (unset: NoSuchResourceException,
    /// as for a quota never changed, so the client falls back to the AWS default).
    pub fn set_quota(&self, account: &str, code: &str, value: f64) {
        self.inner()
            .quotas
            .insert((account.into(), code.into()), value);
    }

    /// AssumeRole of any role in `account` is refused (`allow` undoes it).
    pub fn deny_assume_role(&self, account: &str) {
        self.inner().denied.insert(account.into());
    }

    pub fn allow_assume_role(&self, account: &str) {
        self.inner().denied.remove(account);
    }

    /// The Service Quotas calls answered so far (`account:Action:code`).
    pub fn answered(&self) -> Vec<String> {
        self.inner().answered.clone()
    }

    /// The proxy's hook before forwarding: an answer of ours, or None to go on.
    pub fn answer(
        &self,
        service: &str,
        action: &str,
        json: &Value,
        form: &HashMap<String, String>,
        authorization: &str,
    ) -> Option<Made> {
        match (service, action) {
            ("sts", "AssumeRole") => {
                let arn = form.get("RoleArn")?;
                let account = arn.split(':').nth(4)?;
                self.inner().denied.contains(account).then(|| {
                    let msg = format!("User: arn:aws:iam::123456789012:user/streamstack is not authorized to perform: sts:AssumeRole on resource: {arn}");
                    let body = format!("<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>{msg}</Message></Error><RequestId>realism-proxy</RequestId></ErrorResponse>");
                    (403, "text/xml", body)
                })
            }
            ("servicequotas", "GetServiceQuota" | "GetAWSDefaultServiceQuota") => {
                Some(self.quota(action, json, authorization))
            }
            _ => None,
        }
    }

    fn quota(&self, action: &str, json: &Value, authorization: &str) -> Made {
        let service = json["ServiceCode"].as_str().unwrap_or_default().to_string();
        let code = json["QuotaCode"].as_str().unwrap_or_default().to_string();
        let key = authorization
            .split("Credential=")
            .nth(1)
            .and_then(|c| c.split('/').next())
            .unwrap_or_default();
        let mut inner = self.inner();
        let account = inner
            .keys
            .get(key)
            .cloned()
            .unwrap_or_else(|| "123456789012".into());
        inner.answered.push(format!("{account}:{action}:{code}"));
        let known = AWS_DEFAULTS
            .iter()
            .find(|(s, c, _, _)| *s == service && *c == code);
        let value = match action {
            "GetServiceQuota" => inner.quotas.get(&(account.clone(), code.clone())).copied(),
            _ => known.map(|k| k.3),
        };
        match value {
            Some(v) => {
                let name = known.map_or("", |k| k.2);
                let arn = format!("arn:aws:servicequotas:us-east-1:{account}:{service}/{code}");
                let body = json!({"Quota": {"ServiceCode": service, "ServiceName": service,
                    "QuotaArn": arn, "QuotaCode": code, "QuotaName": name, "Value": v,
                    "Unit": "None", "Adjustable": true, "GlobalQuota": false}});
                (200, "application/x-amz-json-1.1", body.to_string())
            }
            None => {
                let body = json!({"__type": "NoSuchResourceException",
                    "message": format!("The request failed because the specified quota {code} does not exist.")});
                (400, "application/x-amz-json-1.1", body.to_string())
            }
        }
    }

    /// The proxy's hook after moto answered: learns the account of each assumed key.
    pub fn observe(
        &self,
        service: &str,
        action: &str,
        form: &HashMap<String, String>,
        body: &[u8],
    ) {
        if (service, action) != ("sts", "AssumeRole") {
            return;
        }
        let text = String::from_utf8_lossy(body);
        let key = text
            .split("<AccessKeyId>")
            .nth(1)
            .and_then(|r| r.split("</AccessKeyId>").next());
        let account = form.get("RoleArn").and_then(|a| a.split(':').nth(4));
        if let (Some(k), Some(a)) = (key, account) {
            self.inner().keys.insert(k.to_string(), a.to_string());
        }
    }
}
