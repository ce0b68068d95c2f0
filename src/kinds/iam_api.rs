//! What both IAM kinds (roles and instance profiles) do with IAM the same way: tags as IAM takes
//! and answers them, a role's tags, listings by marker, names under the stack's IAM path, which
//! found entities a discovery keeps, and a create that finds its name taken.

use std::collections::BTreeMap;
use std::future::Future;

use aws_sdk_iam::types::Tag;

use super::{complete_iam_names, Cx, Live};
use crate::aws::Ctx;
use crate::model::{IAM_PATH_ROOT, TAG_STACK};
use crate::{Error, Result};

/// Tags as IAM takes them; `op` names the call they are for.
pub fn tags(op: &str, tags: &BTreeMap<String, String>) -> Result<Vec<Tag>> {
    tags.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect::<Result<_, _>>()
        .map_err(|e| Error::Internal(format!("{op}: {e}")))
}

/// Tags as IAM answers them, as a map.
pub fn tag_map(tags: Vec<Tag>) -> BTreeMap<String, String> {
    tags.into_iter().map(|t| (t.key, t.value)).collect()
}

/// The marker of an IAM listing's next page: only while the answer says it is truncated.
pub fn next_marker(marker: Option<String>, is_truncated: bool) -> Option<String> {
    marker.filter(|_| is_truncated)
}

/// [`crate::aws::pages!`] of an IAM listing (pages by `Marker` while `IsTruncated`): `|$out|
/// $items` takes the items out of one answer.
macro_rules! pages {
    ($op:expr, most: $most:expr, $request:expr, |$out:ident| $items:expr) => {
        $crate::aws::pages!($op, most: $most, $request, set_marker, |$out| {
            let next = $crate::kinds::iam_api::next_marker($out.marker.clone(), $out.is_truncated);
            ($items, next)
        })
    };
    ($op:expr, $request:expr, |$out:ident| $items:expr) => {
        $crate::kinds::iam_api::pages!($op, most: usize::MAX, $request, |$out| $items)
    };
}
pub(crate) use pages;

/// Every tag of role `name` (ListRoleTags, all pages).
pub async fn role_tags(cx: &Cx, name: &str) -> Result<BTreeMap<String, String>> {
    role_tags_of(&cx.clients.iam, name).await
}

async fn role_tags_of(iam: &aws_sdk_iam::Client, name: &str) -> Result<BTreeMap<String, String>> {
    let request = iam.list_role_tags().role_name(name);
    let tags = pages!("iam:ListRoleTags", request.clone(), |out| out.tags).await?;
    Ok(tag_map(tags))
}

/// Every tag of instance profile `name`, as GetInstanceProfile answers them (moto lacks
/// ListInstanceProfileTags).
async fn profile_tags_of(
    iam: &aws_sdk_iam::Client,
    name: &str,
) -> Result<BTreeMap<String, String>> {
    let call = iam.get_instance_profile().instance_profile_name(name);
    let out = call.send().await.op("iam:GetInstanceProfile")?;
    let tags = out.instance_profile.and_then(|p| p.tags);
    Ok(tag_map(tags.unwrap_or_default()))
}

/// [`super::ResourceKind::correct_listing`] of an IAM kind: its entities of every stack (see
/// [`of_every_stack`]).
pub fn unlisted(
    clients: &crate::aws::Clients,
    profiles: bool,
) -> futures::future::BoxFuture<'_, Result<super::ListingFix>> {
    Box::pin(async move {
        Ok(super::ListingFix {
            unlisted: of_every_stack(&clients.iam, profiles).await?,
            not_leftovers: Vec::new(),
        })
    })
}

/// For `stacks`: the roles (or, with `profiles`, the instance profiles) of every stack in the
/// account, which the Resource Groups Tagging API does not list
/// (https://docs.aws.amazon.com/resourcegroupstagging/latest/APIReference/supported-services.html
/// has no IAM entry): those under [`IAM_PATH_ROOT`] tagged `streamstack:stack`, as (ARN, tags).
/// One listing by path, then each one's tags (the listings leave tags out).
pub async fn of_every_stack(
    iam: &aws_sdk_iam::Client,
    profiles: bool,
) -> Result<Vec<(String, BTreeMap<String, String>)>> {
    let entities: Vec<(String, String, String)> = if profiles {
        let request = iam.list_instance_profiles().path_prefix(IAM_PATH_ROOT);
        let op = "iam:ListInstanceProfiles";
        let listed = pages!(op, request.clone(), |out| out.instance_profiles).await?;
        listed
            .into_iter()
            .map(|p| (p.path, p.instance_profile_name, p.arn))
            .collect()
    } else {
        let request = iam.list_roles().path_prefix(IAM_PATH_ROOT);
        let listed = pages!("iam:ListRoles", request.clone(), |out| out.roles).await?;
        listed
            .into_iter()
            .map(|r| (r.path, r.role_name, r.arn))
            .collect()
    };
    let under = entities
        .into_iter()
        .filter(|(path, _, _)| path.starts_with(IAM_PATH_ROOT));
    let tagged = futures::future::try_join_all(under.map(|(_, name, arn)| async move {
        let tags = if profiles {
            profile_tags_of(iam, &name).await
        } else {
            role_tags_of(iam, &name).await
        };
        // Gone between the listing and the tag read: not a leftover.
        Ok::<_, Error>(super::found(tags)?.map(|t| (arn, t)))
    }))
    .await?;
    Ok(tagged
        .into_iter()
        .flatten()
        .filter(|(_, t)| t.contains_key(TAG_STACK))
        .collect())
}

/// The names of the IAM entities `listed` under `path` (all of them without one), where
/// `path_and_name` tells an entity's. moto ignores `PathPrefix` in some listings, so the path is
/// checked here too.
pub fn names_under<T>(
    path: Option<&str>,
    listed: Vec<T>,
    path_and_name: impl Fn(T) -> (String, String),
) -> Vec<String> {
    listed
        .into_iter()
        .map(path_and_name)
        .filter(|(p, _)| path.is_none_or(|prefix| p.starts_with(prefix)))
        .map(|(_, name)| name)
        .collect()
}

/// The names a discovery reads: those `list` finds under the stack's IAM path, plus the
/// account's spelling of wanted names that are elsewhere ([`complete_iam_names`]; `list` with
/// no path lists the whole account).
pub async fn names<F, Fut>(cx: &Cx, wanted: &[&str], list: F) -> Result<Vec<String>>
where
    F: Fn(Option<String>) -> Fut,
    Fut: Future<Output = Result<Vec<String>>>,
{
    let mut names = list(Some(cx.env.iam_path.clone())).await?;
    complete_iam_names(cx, &mut names, wanted, || list(None)).await?;
    Ok(names)
}

/// What a discovery keeps of the entities it read: the stack's, and any with a wanted name
/// (compared case-insensitively, as IAM compares names).
pub fn keep(found: Vec<Option<Live>>, wanted: &[&str]) -> Vec<Live> {
    found
        .into_iter()
        .flatten()
        .filter(|l| {
            l.ours
                || wanted
                    .iter()
                    .any(|w| w.eq_ignore_ascii_case(&l.resource.name))
        })
        .collect()
}

/// Whether a create call (`created`, its answer) made a new entity. When IAM says the name is
/// taken (`EntityAlreadyExists`: left over from an interrupted apply), the entity `read` finds
/// is converged with `update` if it is the stack's, and the answer is `false`; if it is not,
/// IAM's error stands.
pub async fn created<T, R, RFut, U, UFut>(created: Result<T>, read: R, update: U) -> Result<bool>
where
    R: FnOnce() -> RFut,
    RFut: Future<Output = Result<Option<Live>>>,
    U: FnOnce(Live) -> UFut,
    UFut: Future<Output = Result<()>>,
{
    match created {
        Ok(_) => Ok(true),
        Err(e) if e.code() == Some("EntityAlreadyExists") => match read().await? {
            Some(live) if live.ours => update(live).await.map(|()| false),
            _ => Err(e),
        },
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_kept_under_the_path_only() {
        let listed = vec![
            ("/streamstack/lab/".to_string(), "lab-host".to_string()),
            ("/".to_string(), "other".to_string()),
            ("/streamstack/lab-2/".to_string(), "lab-2-host".to_string()),
        ];
        let under = names_under(Some("/streamstack/lab/"), listed.clone(), |e| e);
        assert_eq!(under, ["lab-host"]);
        assert_eq!(names_under(None, listed, |e| e).len(), 3);
    }
}
