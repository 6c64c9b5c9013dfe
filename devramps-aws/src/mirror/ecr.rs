//! ECR's side of image mirroring: which account and region an ECR host is, the registry
//! credentials (`GetAuthorizationToken`, cached until shortly before they expire), a
//! repository (`DescribeRepositories`: its ARN and tag mutability), what a tag names
//! (`DescribeImages`), a manifest held by digest (`BatchGetImage`) and a tag set on it
//! (`PutImage`). Every call names the repository and its ARN when it fails.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use aws_sdk_ecr::types::ImageIdentifier;
use devramps_core::{Error, Result};

use super::RegistryAuth;
use crate::stage::{AwsFailure, classify};

/// An ECR registry: `<account>.dkr.ecr.<region>.amazonaws.com`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EcrHost {
    /// The registry's account.
    pub account: String,
    /// The registry's region.
    pub region: String,
}

impl EcrHost {
    /// The account and region of an ECR registry host; `None` for any other host.
    pub fn parse(host: &str) -> Option<EcrHost> {
        let (account, rest) = host.split_once(".dkr.ecr.")?;
        let region = rest
            .strip_suffix(".amazonaws.com")
            .or_else(|| rest.strip_suffix(".amazonaws.com.cn"))?;
        let valid = account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit());
        (valid && !region.is_empty() && !region.contains('.')).then(|| EcrHost {
            account: account.to_owned(),
            region: region.to_owned(),
        })
    }

    /// The ARN of `repository` in this registry.
    pub fn repository_arn(&self, repository: &str) -> String {
        let partition = if self.region.starts_with("cn-") {
            "aws-cn"
        } else if self.region.starts_with("us-gov-") {
            "aws-us-gov"
        } else {
            "aws"
        };
        format!(
            "arn:{partition}:ecr:{}:{}:repository/{repository}",
            self.region, self.account
        )
    }
}

/// A repository as `DescribeRepositories` sees it.
#[derive(Clone, Debug)]
pub(crate) struct Repository {
    /// `ECR repository `name` (arn)`, for messages.
    pub(crate) what: String,
    pub(crate) name: String,
    pub(crate) account: String,
    /// `imageTagMutability` is `IMMUTABLE` (or `IMMUTABLE_WITH_EXCLUSION`).
    pub(crate) immutable: bool,
}

/// How long before its `expiresAt` a registry token is fetched again.
const TOKEN_MARGIN: Duration = Duration::from_secs(15 * 60);

/// Registry tokens, per (who asks, registry).
#[derive(Debug, Default)]
pub(crate) struct Tokens(Mutex<HashMap<(String, EcrHost), (RegistryAuth, SystemTime)>>);

impl Tokens {
    /// The Basic credentials of `host` for the principal `who` (its `client`): cached, or
    /// from `GetAuthorizationToken`.
    pub(crate) async fn auth(
        &self,
        who: &str,
        client: &aws_sdk_ecr::Client,
        host: &EcrHost,
    ) -> Result<RegistryAuth> {
        let key = (who.to_owned(), host.clone());
        if let Some((auth, until)) = self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
            && *until > SystemTime::now()
        {
            return Ok(auth.clone());
        }
        let resource = format!("registry {} ({who})", host.account);
        let out = client
            .get_authorization_token()
            .send()
            .await
            .map_err(|e| classify("ecr", "GetAuthorizationToken").error(e, &resource))?;
        let data = out.authorization_data().first().ok_or_else(|| {
            crate::stage::incomplete("ecr", "GetAuthorizationToken", "authorization data")
        })?;
        let token = data.authorization_token().unwrap_or_default();
        let auth = decode_token(token).ok_or_else(|| {
            Error::backend(
                "ecr",
                format!("GetAuthorizationToken {resource}"),
                "the token is not base64 `user:password`",
            )
        })?;
        let until = data
            .expires_at()
            .and_then(|t| SystemTime::try_from(*t).ok())
            .and_then(|t| t.checked_sub(TOKEN_MARGIN))
            .unwrap_or(SystemTime::UNIX_EPOCH);
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key, (auth.clone(), until));
        Ok(auth)
    }
}

/// An ECR authorization token (base64 of `AWS:<password>`) as Basic credentials.
pub fn decode_token(token: &str) -> Option<RegistryAuth> {
    let text = String::from_utf8(base64(token.trim())?).ok()?;
    let (user, password) = text.split_once(':')?;
    Some(RegistryAuth::Basic {
        user: user.to_owned(),
        password: password.to_owned(),
    })
}

/// Standard base64 (padding optional); `None` when `text` is not base64.
pub(super) fn base64(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.trim_end_matches('=').bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// The repository `name` of `host`: [`Error::NotFound`] naming it and its ARN when missing.
pub(crate) async fn repository(
    client: &aws_sdk_ecr::Client,
    host: &EcrHost,
    name: &str,
    role: &str,
) -> Result<Repository> {
    let what = format!(
        "{role} ECR repository `{name}` ({})",
        host.repository_arn(name)
    );
    let out = client
        .describe_repositories()
        .registry_id(&host.account)
        .repository_names(name)
        .send()
        .await
        .map_err(|e| classify("ecr", "DescribeRepositories").error(e, &what))?;
    let repo = out
        .repositories()
        .iter()
        .find(|r| r.repository_name() == Some(name))
        .ok_or_else(|| Error::not_found(format!("{what} (DescribeRepositories)")))?;
    let immutable = repo
        .image_tag_mutability()
        .is_some_and(|m| m.as_str().starts_with("IMMUTABLE"));
    Ok(Repository {
        what,
        name: name.to_owned(),
        account: host.account.clone(),
        immutable,
    })
}

/// The digest `tag` names in `repo`, or `None`.
pub(crate) async fn tag_digest(
    client: &aws_sdk_ecr::Client,
    repo: &Repository,
    tag: &str,
) -> Result<Option<String>> {
    let id = ImageIdentifier::builder().image_tag(tag).build();
    let answer = client
        .describe_images()
        .registry_id(&repo.account)
        .repository_name(&repo.name)
        .image_ids(id)
        .send()
        .await;
    match answer {
        Ok(out) => Ok(out
            .image_details()
            .iter()
            .find_map(|d| d.image_digest().map(str::to_owned))),
        Err(e)
            if AwsFailure::code(&e) == Some("ImageNotFoundException")
                || (AwsFailure::is_missing(&e)
                    && AwsFailure::code(&e) != Some("RepositoryNotFoundException")) =>
        {
            Ok(None)
        }
        Err(e) => {
            Err(classify("ecr", "DescribeImages")
                .error(e, &format!("tag `{tag}` of {}", repo.what)))
        }
    }
}

/// The manifest (and its media type) `repo` holds under `digest`, or `None`.
pub(crate) async fn manifest(
    client: &aws_sdk_ecr::Client,
    repo: &Repository,
    digest: &str,
) -> Result<Option<(String, Option<String>)>> {
    let out = client
        .batch_get_image()
        .registry_id(&repo.account)
        .repository_name(&repo.name)
        .image_ids(ImageIdentifier::builder().image_digest(digest).build())
        .accepted_media_types("application/vnd.oci.image.manifest.v1+json")
        .accepted_media_types("application/vnd.oci.image.index.v1+json")
        .accepted_media_types("application/vnd.docker.distribution.manifest.v2+json")
        .accepted_media_types("application/vnd.docker.distribution.manifest.list.v2+json")
        .send()
        .await
        .map_err(|e| {
            classify("ecr", "BatchGetImage").error(e, &format!("image {digest} of {}", repo.what))
        })?;
    Ok(out.images().iter().find_map(|image| {
        let manifest = image.image_manifest()?;
        Some((
            manifest.to_owned(),
            image.image_manifest_media_type().map(str::to_owned),
        ))
    }))
}

/// Sets `tag` of `repo` to the manifest it holds as `digest` (`PutImage`: no blob moves).
pub(crate) async fn put_tag(
    client: &aws_sdk_ecr::Client,
    repo: &Repository,
    tag: &str,
    digest: &str,
    manifest: (String, Option<String>),
) -> Result<()> {
    let (manifest, media_type) = manifest;
    client
        .put_image()
        .registry_id(&repo.account)
        .repository_name(&repo.name)
        .image_tag(tag)
        .image_digest(digest)
        .image_manifest(manifest)
        .set_image_manifest_media_type(media_type)
        .send()
        .await
        .map_err(|e| {
            classify("ecr", "PutImage")
                .error(e, &format!("tag `{tag}` on {digest} in {}", repo.what))
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecr_hosts_and_tokens() {
        let host = EcrHost::parse("222222222222.dkr.ecr.us-west-2.amazonaws.com").expect("ecr");
        assert_eq!(
            (host.account.as_str(), host.region.as_str()),
            ("222222222222", "us-west-2")
        );
        assert_eq!(
            host.repository_arn("a/b"),
            "arn:aws:ecr:us-west-2:222222222222:repository/a/b"
        );
        assert_eq!(EcrHost::parse("127.0.0.1:5000"), None);
        assert_eq!(EcrHost::parse("x.dkr.ecr.us-east-1.amazonaws.com"), None);
        // base64("AWS:secret-pass")
        assert_eq!(
            decode_token("QVdTOnNlY3JldC1wYXNz"),
            Some(RegistryAuth::Basic {
                user: "AWS".into(),
                password: "secret-pass".into()
            })
        );
        assert_eq!(decode_token("not base64!"), None);
    }

    #[test]
    fn registry_passwords_are_not_in_debug_output() {
        let auth = decode_token("QVdTOnNlY3JldC1wYXNz").expect("a token");
        let tokens = Tokens::default();
        let host = EcrHost::parse("222222222222.dkr.ecr.us-west-2.amazonaws.com").expect("ecr");
        tokens
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(("role".into(), host), (auth.clone(), SystemTime::now()));
        for shown in [format!("{auth:?}"), format!("{tokens:?}")] {
            assert!(!shown.contains("secret-pass"), "{shown}");
            assert!(shown.contains("AWS"), "{shown}");
        }
    }
}
