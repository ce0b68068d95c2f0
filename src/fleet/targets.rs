//! A fleet file's targets, resolved: organizational units expanded to their ACTIVE accounts
//! (AWS Organizations `ListAccountsForParent`), then one [`Target`] per account and region.
//! `--only` and `--retry-failed` select among them.

use std::collections::BTreeMap;

use crate::aws::{Clients, Ctx};
use crate::{Error, Result};

use super::file::{FleetFile, Who};
use super::{role_arn, Target};

/// Every target of `file`, with organizational units expanded through `clients` (only when
/// the file names one: a file of accounts makes no call).
pub async fn resolve(file: &FleetFile, clients: Option<&Clients>) -> Result<Vec<Target>> {
    let mut ous: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for t in &file.targets {
        if let Who::OrganizationalUnit(ou) = &t.who {
            let Some(c) = clients else {
                return Err(Error::Config(format!(
                    "the fleet names organizational unit {ou}: AWS Organizations must be reachable to list its accounts"
                )));
            };
            ous.insert(ou.clone(), active_accounts(c, ou).await?);
        }
    }
    Ok(expand(file, &ous))
}

/// The ACTIVE accounts directly in organizational unit `ou` (paginated).
async fn active_accounts(c: &Clients, ou: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = c
            .organizations
            .list_accounts_for_parent()
            .parent_id(ou)
            .set_next_token(token.clone())
            .send()
            .await
            .op("ListAccountsForParent")?;
        for a in page.accounts() {
            let active = a
                .state()
                .map(|s| s.as_str() == "ACTIVE")
                .or_else(|| a.status().map(|s| s.as_str() == "ACTIVE"))
                .unwrap_or(false);
            if let (true, Some(id)) = (active, a.id()) {
                out.push(id.to_string());
            }
        }
        token = crate::aws::next_token(page.next_token().map(String::from));
        if token.is_none() {
            return Ok(out);
        }
    }
}

/// The targets of `file` given each organizational unit's accounts: one per account and
/// region, in file order; an account named on its own wins over the same account in an OU.
pub fn expand(file: &FleetFile, ous: &BTreeMap<String, Vec<String>>) -> Vec<Target> {
    let named: Vec<&str> = file
        .targets
        .iter()
        .filter_map(|t| match &t.who {
            Who::Account(a) => Some(a.as_str()),
            Who::OrganizationalUnit(_) => None,
        })
        .collect();
    let mut out: Vec<Target> = Vec::new();
    for t in &file.targets {
        let accounts: Vec<(String, Option<String>)> = match &t.who {
            Who::Account(a) => vec![(a.clone(), t.name.clone())],
            Who::OrganizationalUnit(ou) => ous
                .get(ou)
                .map(|v| {
                    v.iter()
                        .filter(|a| !named.contains(&a.as_str()))
                        .map(|a| (a.clone(), None))
                        .collect()
                })
                .unwrap_or_default(),
        };
        let regions = t.regions.clone().unwrap_or_else(|| file.regions.clone());
        let role = t
            .assume_role
            .clone()
            .unwrap_or_else(|| file.assume_role.clone());
        let external_id = t.external_id.clone().or_else(|| file.external_id.clone());
        for (account, name) in accounts {
            for region in &regions {
                let target = Target {
                    role_arn: role_arn(&account, region, &role),
                    name: name.clone().unwrap_or_else(|| account.clone()),
                    account: account.clone(),
                    region: region.clone(),
                    vars: t.vars.clone(),
                    external_id: external_id.clone(),
                };
                if !out.iter().any(|o| o.id() == target.id()) {
                    out.push(target);
                }
            }
        }
    }
    out
}

/// The targets `--only` selects (every one without it); a selector that names no target is
/// an error, so a typo never silently runs nothing.
pub fn select(targets: Vec<Target>, only: &[String]) -> Result<Vec<Target>> {
    if only.is_empty() {
        return Ok(targets);
    }
    if let Some(s) = only.iter().find(|s| !targets.iter().any(|t| t.matches(s))) {
        let known: Vec<String> = targets.iter().map(Target::id).collect();
        return Err(Error::Config(format!(
            "--only {s}: no target of the fleet is named so (targets: {})",
            known.join(", ")
        )));
    }
    Ok(targets
        .into_iter()
        .filter(|t| only.iter().any(|s| t.matches(s)))
        .collect())
}

/// A session name for AssumeRole naming the run: `streamstack-<stack>-<run>`, cut to STS's 64
/// characters of `[\w+=,.@-]`.
pub fn session_name(stack: &str, run_id: &str) -> String {
    let raw = format!("streamstack-{stack}-{run_id}");
    raw.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_+=,.@-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::file::load_str;

    fn fleet() -> FleetFile {
        load_str(
            "f.yaml",
            "version: 1\nregions: [eu-west-1, us-east-1]\ntargets:\n  - account: \"111111111111\"\n    name: alice\n    vars: { student: alice }\n  - account: \"222222222222\"\n    regions: [ap-northeast-2]\n    assume_role: Lab\n    external_id: xx-1\n  - organizational_unit: ou-ab12-cd34ef56\n",
        )
        .unwrap()
    }

    #[test]
    fn expands_accounts_regions_and_ous() {
        let ous = BTreeMap::from([(
            "ou-ab12-cd34ef56".to_string(),
            vec!["111111111111".to_string(), "333333333333".to_string()],
        )]);
        let t = expand(&fleet(), &ous);
        let ids: Vec<String> = t.iter().map(Target::id).collect();
        assert_eq!(
            ids,
            [
                "111111111111/eu-west-1",
                "111111111111/us-east-1",
                "222222222222/ap-northeast-2",
                "333333333333/eu-west-1",
                "333333333333/us-east-1"
            ]
        );
        assert_eq!(t[0].name, "alice");
        assert_eq!(t[0].vars, vec![("student".into(), "alice".into())]);
        assert_eq!(
            t[0].role_arn,
            "arn:aws:iam::111111111111:role/OrganizationAccountAccessRole"
        );
        assert_eq!(t[2].role_arn, "arn:aws:iam::222222222222:role/Lab");
        assert_eq!(t[2].external_id.as_deref(), Some("xx-1"));
        assert_eq!(t[3].name, "333333333333");
    }

    #[test]
    fn only_selects_by_id_account_or_name_and_refuses_unknown() {
        let t = expand(&fleet(), &BTreeMap::new());
        let s = select(t.clone(), &["alice".into()]).unwrap();
        assert_eq!(s.len(), 2);
        let s = select(t.clone(), &["222222222222/ap-northeast-2".into()]).unwrap();
        assert_eq!(s.len(), 1);
        assert!(select(t, &["bob".into()]).is_err());
    }

    #[test]
    fn session_names_keep_to_sts_rules() {
        let n = session_name(&"x".repeat(80), "abc");
        assert_eq!(n.len(), 64);
        assert_eq!(session_name("lab", "r1/2"), "streamstack-lab-r1-2");
        assert_eq!(
            crate::fleet::role_arn("1", "cn-north-1", "R"),
            "arn:aws-cn:iam::1:role/R"
        );
    }
}
