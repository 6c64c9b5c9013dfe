//! Runs every example so that none can rot.

#[path = "../examples/validate.rs"]
#[allow(dead_code, unreachable_pub)]
mod validate;

#[test]
fn validate_example_reports_both_sample_pipelines() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("repo");
    let outcomes = validate::run(&repo).expect("sample repo is readable");
    let slugs: Vec<&str> = outcomes.iter().map(|o| o.slug.as_str()).collect();
    assert_eq!(
        slugs,
        ["api", "web"],
        "tools/ has no pipeline.yaml and is skipped"
    );
    for o in &outcomes {
        assert_eq!(o.errors, 0, "{} should be valid", o.slug);
        assert_eq!(o.stages, ["staging", "prod"]);
    }
}
