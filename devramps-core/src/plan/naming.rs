//! AWS resource names of a pipeline's artifacts, as the DevRamps bootstrap creates them
//! (reference 3.5): normalized, and cut to the service's limit with a stable hash suffix.

/// Lowercases, turns every character outside `[a-z0-9-]` into `-`, collapses runs of `-` and
/// trims `-` at both ends.
pub fn normalize(name: &str) -> String {
    normalize_joined(&[name])
}

/// [`normalize`] of `parts` joined with `-`, without building the joined text.
fn normalize_joined(parts: &[&str]) -> String {
    fn push(out: &mut String, c: char) {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    let mut out = String::with_capacity(parts.iter().map(|p| p.len() + 1).sum());
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            push(&mut out, '-');
        }
        for c in part.chars() {
            if c.is_ascii() {
                push(&mut out, c.to_ascii_lowercase());
            } else {
                c.to_lowercase().for_each(|l| push(&mut out, l));
            }
        }
    }
    let end = out.trim_end_matches('-').len();
    out.truncate(end);
    out
}

/// Cuts `name` to `max` characters; a cut name ends in `-` and 6 base-36 characters of a hash
/// of the whole name, so distinct long names stay distinct.
///
/// ```
/// use devramps_core::plan::naming::limit;
/// assert_eq!(limit("short", 63), "short");
/// let cut = limit(&"a".repeat(100), 63);
/// assert_eq!(cut.len(), 63);
/// assert_eq!(&cut[56..57], "-");
/// ```
pub fn limit(name: &str, max: usize) -> String {
    if name.len() <= max {
        return name.to_owned();
    }
    let suffix = base36(fnv1a(name.as_bytes()), 6);
    let keep = max.saturating_sub(7);
    let head = name[..keep].trim_end_matches('-');
    format!("{head}-{suffix}")
}

/// [`limit`] of a name already owned: short names are returned as they are.
fn limit_owned(name: String, max: usize) -> String {
    if name.len() <= max {
        name
    } else {
        limit(&name, max)
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

fn base36(mut n: u64, digits: usize) -> String {
    const ALPHABET: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = vec![b'0'; digits];
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[(n % 36) as usize];
        n /= 36;
    }
    String::from_utf8(out).unwrap_or_default()
}

/// The ECR repository of an artifact in a stage: `<pipeline>-<stage>-<artifact>` (at most 256).
pub fn stage_repository(pipeline_slug: &str, stage: &str, artifact_id: &str) -> String {
    limit_owned(normalize_joined(&[pipeline_slug, stage, artifact_id]), 256)
}

/// The ECR repository of a shared artifact in the CI/CD account: `<pipeline>-<artifact>`.
pub fn root_repository(pipeline_slug: &str, artifact_id: &str) -> String {
    limit_owned(normalize_joined(&[pipeline_slug, artifact_id]), 256)
}

/// The S3 bucket of an artifact in a stage: `<account>-<pipeline>-<stage>-<artifact>` (at most
/// 63).
pub fn stage_bucket(
    account_id: &str,
    pipeline_slug: &str,
    stage: &str,
    artifact_id: &str,
) -> String {
    limit_owned(
        normalize_joined(&[account_id, pipeline_slug, stage, artifact_id]),
        63,
    )
}

/// The S3 bucket of a shared artifact in the CI/CD account: `<account>-<pipeline>-<artifact>`.
pub fn root_bucket(cicd_account_id: &str, pipeline_slug: &str, artifact_id: &str) -> String {
    limit_owned(
        normalize_joined(&[cicd_account_id, pipeline_slug, artifact_id]),
        63,
    )
}

/// The organization's Terraform state bucket: `devramps-<org_slug>-terraform-state` (at most
/// 63).
pub fn terraform_state_bucket(org_slug: &str) -> String {
    limit_owned(
        normalize_joined(&["devramps", org_slug, "terraform-state"]),
        63,
    )
}

/// The key of one Terraform step's state in the state bucket:
/// `<pipeline>/<stage>/<step>/terraform.tfstate` (each part normalized). Every stage and every
/// Terraform step of a stage has its own state.
pub fn terraform_state_key(pipeline_slug: &str, stage: &str, step: &str) -> String {
    format!(
        "{}/{}/{}/terraform.tfstate",
        normalize(pipeline_slug),
        normalize(stage),
        normalize(step)
    )
}

/// The deployment role of a stage: `DevRamps-<pipeline>-<stage>-DeploymentRole` (at most 64).
pub fn stage_role(pipeline_slug: &str, stage: &str) -> String {
    let role = format!("DevRamps-{pipeline_slug}-{stage}-DeploymentRole");
    if role.len() <= 64 {
        role
    } else {
        limit(&role, 64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plain definition of [`normalize`].
    fn reference(name: &str) -> String {
        let mut out = String::new();
        for c in name.chars().flat_map(char::to_lowercase) {
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                out.push(c);
            } else if !out.ends_with('-') && !out.is_empty() {
                out.push('-');
            }
        }
        out.trim_end_matches('-').to_owned()
    }

    #[test]
    fn joined_parts_normalize_like_the_joined_text() {
        let parts = [
            "",
            "-",
            "--",
            "a",
            "A-",
            "-b",
            "My Stage",
            "İstanbul",
            "ß_x",
            "µ1",
            "x--y",
            "9",
        ];
        for a in parts {
            for b in parts {
                for c in parts {
                    let joined = format!("{a}-{b}-{c}");
                    assert_eq!(normalize(&joined), reference(&joined), "{joined:?}");
                    assert_eq!(
                        normalize_joined(&[a, b, c]),
                        reference(&joined),
                        "{joined:?}"
                    );
                }
            }
        }
        assert_eq!(normalize("--My  Pipeline--"), "my-pipeline");
    }

    #[test]
    fn scenario_51_names() {
        assert_eq!(
            stage_repository("api", "prod", "api-image"),
            "api-prod-api-image"
        );
        assert_eq!(
            stage_bucket("222222222222", "api", "prod", "api-image"),
            "222222222222-api-prod-api-image"
        );
        assert_eq!(
            stage_role("api", "prod"),
            "DevRamps-api-prod-DeploymentRole"
        );
        let long = stage_bucket(
            "222222222222",
            "a-very-long-pipeline-name",
            "production-eu",
            "frontend-static-bundle",
        );
        assert!(long.len() <= 63, "{long}");
        let suffix = &long[long.len() - 7..];
        assert!(suffix.starts_with('-') && suffix[1..].bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(
            limit(&"x".repeat(80), 63),
            limit(&format!("{}y", "x".repeat(79)), 63)
        );
    }

    #[test]
    fn terraform_state_lives_in_the_organization_bucket_one_key_per_step() {
        assert_eq!(
            terraform_state_bucket("Acme Corp"),
            "devramps-acme-corp-terraform-state"
        );
        assert_eq!(
            terraform_state_key("api", "Prod EU", "infra"),
            "api/prod-eu/infra/terraform.tfstate"
        );
    }
}
