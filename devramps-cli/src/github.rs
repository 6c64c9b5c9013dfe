//! `devramps serve --github OWNER/NAME`: the credentials and API base from the environment,
//! the [`GitHubSource`] as the engine's source (no local clone), and the commit statuses.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use devramps_github::{Auth, GITHUB_API, GitHubClient, GitHubSource};

use crate::local::{NoCheckout, Origin};

/// The variables `--github` reads, for messages and `--help`.
pub(crate) const VARIABLES: &str = "GITHUB_TOKEN (a personal or fine-grained token), or \
     GITHUB_APP_ID + GITHUB_APP_INSTALLATION_ID + GITHUB_APP_PRIVATE_KEY_FILE (a GitHub App)";

/// Why a test gate cannot run when serving from GitHub.
const NO_CLONE: &str = "a local clone of the commit to test (serve a clone with --repo DIR, \
     kept fetched, to run test gates)";

/// The GitHub App's variables.
const APP_VARIABLES: [&str; 3] = [
    "GITHUB_APP_ID",
    "GITHUB_APP_INSTALLATION_ID",
    "GITHUB_APP_PRIVATE_KEY_FILE",
];

/// How to reach GitHub: the API base and the credentials.
#[derive(Debug)]
pub(crate) struct Credentials {
    /// `GITHUB_API_URL`, default `https://api.github.com`.
    pub(crate) api: String,
    /// A token or a GitHub App installation.
    pub(crate) auth: Auth,
}

/// Reads the credentials through `var` (the environment in `devramps serve`): a GitHub App
/// when any `GITHUB_APP_*` variable is set (then all three are needed), else `GITHUB_TOKEN`.
/// Empty values count as unset.
pub(crate) fn credentials(var: impl Fn(&str) -> Option<String>) -> Result<Credentials, String> {
    let var = |name: &str| var(name).filter(|v| !v.trim().is_empty());
    let api = var("GITHUB_API_URL").unwrap_or_else(|| GITHUB_API.to_owned());
    let app: Vec<Option<String>> = APP_VARIABLES.iter().map(|&n| var(n)).collect();
    let auth = if app.iter().any(Option::is_some) {
        let missing: Vec<&str> = APP_VARIABLES
            .iter()
            .zip(&app)
            .filter(|(_, v)| v.is_none())
            .map(|(n, _)| *n)
            .collect();
        let [Some(id), Some(installation), Some(key_file)] = app.as_slice() else {
            return Err(format!(
                "--github: a GitHub App needs {} too (set: {})\n  help: set all three of {}, \
                 or unset them and set GITHUB_TOKEN",
                missing.join(", "),
                APP_VARIABLES
                    .iter()
                    .filter(|n| !missing.contains(n))
                    .copied()
                    .collect::<Vec<_>>()
                    .join(", "),
                APP_VARIABLES.join(", ")
            ));
        };
        let number = |name: &str, value: &str| {
            value.trim().parse::<u64>().map_err(|_| {
                format!("--github: {name} `{value}` is not a number (the App's numeric id)")
            })
        };
        let app_id = number("GITHUB_APP_ID", id)?;
        let installation_id = number("GITHUB_APP_INSTALLATION_ID", installation)?;
        let path = Path::new(key_file);
        let pem = devramps_sim::files::read_text(path)
            .map_err(|e| format!("--github: GITHUB_APP_PRIVATE_KEY_FILE: {e}"))?;
        Auth::app(app_id, installation_id, &pem).map_err(|e| {
            format!(
                "--github: GITHUB_APP_PRIVATE_KEY_FILE `{}` is not the App's private key: {e}",
                path.display()
            )
        })?
    } else if let Some(token) = var("GITHUB_TOKEN") {
        Auth::token(token.trim())
    } else {
        return Err(format!(
            "--github: no GitHub credentials in the environment\n  help: set {VARIABLES}; \
             GITHUB_API_URL for GitHub Enterprise (https://HOST/api/v3)"
        ));
    };
    Ok(Credentials { api, auth })
}

/// The client of `credentials` and the engine's origin: `repository` on GitHub, the runners'
/// files under `.devramps/state/` of the current directory, no local clone.
pub(crate) fn origin(
    repository: &str,
    credentials: Credentials,
) -> Result<(GitHubClient, Origin), String> {
    let client = GitHubClient::new(&credentials.api, credentials.auth)
        .map_err(|e| format!("--github: GITHUB_API_URL `{}`: {e}", credentials.api))?;
    let source = GitHubSource::new(client.clone(), repository)
        .map_err(|e| format!("--github {repository}: {e}"))?;
    let state_dir = PathBuf::from(".devramps").join("state");
    let state_dir = std::env::current_dir()
        .map(|dir| dir.join(&state_dir))
        .unwrap_or(state_dir);
    Ok((
        client,
        Origin::remote(
            Arc::new(source),
            state_dir,
            NoCheckout {
                who: "`devramps serve --github`".to_owned(),
                why: NO_CLONE.to_owned(),
            },
        ),
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
    }

    #[test]
    fn a_token_and_the_default_api() {
        let c = credentials(env(&[("GITHUB_TOKEN", "ghp_x\n")])).unwrap();
        assert_eq!(c.api, "https://api.github.com");
        assert!(matches!(c.auth, Auth::Token(ref t) if t == "ghp_x"));
        let c = credentials(env(&[
            ("GITHUB_TOKEN", "t"),
            ("GITHUB_API_URL", "http://127.0.0.1:9/api/v3"),
        ]))
        .unwrap();
        assert_eq!(c.api, "http://127.0.0.1:9/api/v3");
    }

    #[test]
    fn no_credentials_names_the_variables() {
        for vars in [&[][..], &[("GITHUB_TOKEN", " ")][..]] {
            let e = credentials(env(vars)).unwrap_err();
            for name in [
                "GITHUB_TOKEN",
                "GITHUB_APP_ID",
                "GITHUB_APP_PRIVATE_KEY_FILE",
            ] {
                assert!(e.contains(name), "{e}");
            }
        }
    }

    #[test]
    fn a_partial_app_names_what_is_missing() {
        let e = credentials(env(&[("GITHUB_APP_ID", "1"), ("GITHUB_TOKEN", "t")])).unwrap_err();
        assert!(
            e.contains("needs GITHUB_APP_INSTALLATION_ID, GITHUB_APP_PRIVATE_KEY_FILE too"),
            "{e}"
        );
        assert!(e.contains("(set: GITHUB_APP_ID)"), "{e}");
    }

    #[test]
    fn bad_app_values_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key.pem");
        std::fs::write(&key, "not a key").unwrap();
        let key = key.to_string_lossy().into_owned();
        let e = credentials(env(&[
            ("GITHUB_APP_ID", "abc"),
            ("GITHUB_APP_INSTALLATION_ID", "2"),
            ("GITHUB_APP_PRIVATE_KEY_FILE", &key),
        ]))
        .unwrap_err();
        assert!(e.contains("GITHUB_APP_ID `abc` is not a number"), "{e}");
        let e = credentials(env(&[
            ("GITHUB_APP_ID", "1"),
            ("GITHUB_APP_INSTALLATION_ID", "2"),
            ("GITHUB_APP_PRIVATE_KEY_FILE", "/nonexistent/key.pem"),
        ]))
        .unwrap_err();
        assert!(
            e.contains("GITHUB_APP_PRIVATE_KEY_FILE: cannot read `/nonexistent/key.pem`"),
            "{e}"
        );
        let e = credentials(env(&[
            ("GITHUB_APP_ID", "1"),
            ("GITHUB_APP_INSTALLATION_ID", "2"),
            ("GITHUB_APP_PRIVATE_KEY_FILE", &key),
        ]))
        .unwrap_err();
        assert!(e.contains("is not the App's private key"), "{e}");
    }

    #[test]
    fn a_github_app_is_preferred_to_a_token() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("app.pem");
        let made = std::process::Command::new("openssl")
            .args(["genrsa", "-traditional", "-out"])
            .arg(&key)
            .arg("2048")
            .output()
            .expect("openssl is needed to make a test RSA key: apt-get install openssl");
        assert!(made.status.success(), "{made:?}");
        let key = key.to_string_lossy().into_owned();
        let c = credentials(env(&[
            ("GITHUB_TOKEN", "t"),
            ("GITHUB_APP_ID", "42"),
            ("GITHUB_APP_INSTALLATION_ID", " 7 "),
            ("GITHUB_APP_PRIVATE_KEY_FILE", &key),
        ]))
        .unwrap();
        let Auth::App(app) = &c.auth else {
            panic!("not an App: {:?}", c.auth)
        };
        assert_eq!((app.app_id(), app.installation_id()), (42, 7));
    }

    #[test]
    fn a_bad_api_url_or_repository_is_refused() {
        let creds = |api: &str| Credentials {
            api: api.to_owned(),
            auth: Auth::token("t"),
        };
        let e = origin("o/app", creds("not a url")).unwrap_err();
        assert!(e.contains("GITHUB_API_URL `not a url`"), "{e}");
        let e = origin("no-slash", creds("http://127.0.0.1:9")).unwrap_err();
        assert!(e.contains("--github no-slash"), "{e}");
        let (_, origin) = origin("o/app", creds("http://127.0.0.1:9")).unwrap();
        assert!(origin.checkout.is_err());
        assert!(origin.state_dir.ends_with(".devramps/state"));
    }
}
