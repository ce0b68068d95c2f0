//! Templates too large to pass inline. CloudFormation takes a `TemplateBody` of at most 51,200
//! bytes, and a template in S3 (`TemplateURL`) of at most 1 MB
//! (https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/cloudformation-limits.html).
//! A larger one is staged as an object in the account's streamstack bucket of the region,
//! `streamstack-locks-{ACCOUNT_ID}-{REGION}` (the stack's own bucket does not exist before its
//! first deploy), under `{STACK}/cfn/template-{SHA256}.yaml`, and deleted once the change set
//! is computed (CloudFormation keeps the change set's template itself). The bucket must be in
//! the stack's region, which this one is.

use aws_sdk_s3::primitives::ByteStream;

use crate::aws::Ctx;
use crate::kinds::Cx;
use crate::model::Env;
use crate::{Error, Result};

/// CloudFormation's limit on an inline template body, in bytes.
pub const MAX_TEMPLATE_BODY: usize = 51_200;

/// CloudFormation's limit on a template read from S3, in bytes (1 MB).
pub const MAX_TEMPLATE_URL: usize = 1_000_000;

/// How a template of some size reaches CloudFormation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    Inline,
    S3,
}

/// Inline up to 51,200 bytes, through S3 up to 1 MB; larger is refused.
pub fn placement(stack: &str, bytes: usize) -> Result<Placement> {
    if bytes <= MAX_TEMPLATE_BODY {
        Ok(Placement::Inline)
    } else if bytes <= MAX_TEMPLATE_URL {
        Ok(Placement::S3)
    } else {
        Err(Error::Config(format!(
            "the CloudFormation template of stack {stack} is {bytes} bytes; CloudFormation takes \
             at most {MAX_TEMPLATE_URL} from S3 ({MAX_TEMPLATE_BODY} inline). Split the stack \
             or use the default engine"
        )))
    }
}

/// The account's streamstack bucket in the region (shared with the lock).
pub fn bucket_name(env: &Env) -> String {
    crate::lock::bucket_name(&env.account_id, &env.region)
}

/// Where a template body is staged: by stack and content.
pub fn key(stack: &str, body: &str) -> String {
    format!(
        "{stack}/cfn/template-{}.yaml",
        crate::ops::sha256_hex(body.as_bytes())
    )
}

/// The virtual-hosted URL CloudFormation reads the object from.
pub fn url(env: &Env, bucket: &str, key: &str) -> String {
    let domain = if env.partition == "aws-cn" {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    };
    format!("https://{bucket}.s3.{}.{domain}/{key}", env.region)
}

/// A staged template object, to delete once CloudFormation has read it.
#[derive(Debug, Clone)]
pub struct Staged {
    pub bucket: String,
    pub key: String,
    pub url: String,
}

/// Uploads `body` to the staging bucket and returns where it is. The bucket is the lock's: it
/// exists whenever `apply` holds the lock; otherwise (a first `plan`) the lock's own code makes
/// it, private and encrypted, the one way it is ever made.
pub async fn stage(cx: &Cx, body: &str) -> Result<Staged> {
    let bucket = bucket_name(&cx.env);
    let key = key(&cx.stack, body);
    let mut made = false;
    // A bucket just made may take a moment to be visible to PutObject: a few bounded tries.
    let mut pause = std::time::Duration::from_millis(200);
    for attempt in 1.. {
        let put = cx
            .clients
            .s3
            .put_object()
            .bucket(&bucket)
            .key(&key)
            .expected_bucket_owner(&cx.env.account_id)
            .content_type("application/x-yaml")
            .body(ByteStream::from(body.as_bytes().to_vec()))
            .send()
            .await
            .op("s3:PutObject");
        match put {
            Ok(_) => break,
            Err(e) if e.code() == Some("NoSuchBucket") && !made => {
                crate::lock::make_bucket(&cx.clients).await?;
                made = true;
            }
            Err(e) if e.code() == Some("NoSuchBucket") && attempt < 8 => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(std::time::Duration::from_secs(5));
            }
            Err(e) => return Err(e),
        }
    }
    let url = url(&cx.env, &bucket, &key);
    Ok(Staged { bucket, key, url })
}

/// Deletes a staged template; a failure only leaves clutter, so it is logged, not returned.
pub async fn unstage(cx: &Cx, staged: &Staged) {
    let deleted = cx
        .clients
        .s3
        .delete_object()
        .bucket(&staged.bucket)
        .key(&staged.key)
        .expected_bucket_owner(&cx.env.account_id)
        .send()
        .await
        .op("s3:DeleteObject");
    if let Err(e) = deleted {
        tracing::warn!(
            "could not delete the staged template s3://{}/{}: {e}",
            staged.bucket,
            staged.key
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_go_inline_then_through_s3_then_are_refused() {
        assert_eq!(placement("lab", 51_200).ok(), Some(Placement::Inline));
        assert_eq!(placement("lab", 51_201).ok(), Some(Placement::S3));
        assert_eq!(placement("lab", 1_000_000).ok(), Some(Placement::S3));
        let e = placement("lab", 1_000_001).expect_err("too large");
        assert!(e.to_string().contains("1000001 bytes"), "{e}");
    }

    #[test]
    fn a_staged_template_is_named_by_stack_and_content_in_the_regions_bucket() {
        let env = Env::new("123456789012", "ap-northeast-2", "lab");
        let bucket = bucket_name(&env);
        assert_eq!(bucket, "streamstack-locks-123456789012-ap-northeast-2");
        let k = key("lab", "Resources: {}\n");
        assert!(
            k.starts_with("lab/cfn/template-") && k.ends_with(".yaml"),
            "{k}"
        );
        assert_eq!(k.len(), "lab/cfn/template-.yaml".len() + 64);
        assert_ne!(k, key("lab", "Resources: {x: 1}\n"));
        assert_eq!(
            url(&env, &bucket, "lab/cfn/t.yaml"),
            "https://streamstack-locks-123456789012-ap-northeast-2.s3.ap-northeast-2.amazonaws.com/lab/cfn/t.yaml"
        );
        let cn = Env::new("123456789012", "cn-north-1", "lab");
        assert!(url(&cn, "b", "k").ends_with(".amazonaws.com.cn/k"));
    }
}
