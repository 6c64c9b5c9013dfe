//! The scanner's tests: what it finds, what it must not, and that it never panics.

#![allow(clippy::unwrap_used)]
use super::*;
use proptest::prelude::*;

fn var(name: &str, has_default: bool) -> Variable {
    Variable {
        name: name.into(),
        has_default,
    }
}

#[test]
fn variables_with_and_without_defaults_and_the_backend_are_found() {
    let text = r#"
terraform {
  required_providers {
    aws = { source = "hashicorp/aws", version = "~> 5.0" }
  }
  backend "s3" {}
}

variable "region" {
  type = string
}
variable "size" {
  type    = number
  default = 1
  validation {
    condition     = var.size > 0
    error_message = "default = must be positive { }"
  }
}
variable tags { default = { a = "}", b = ["{"] } }
variable "nested_default" {
  type = object({ default = string })
}
resource "aws_s3_bucket" "b" {
  bucket = "x"
  variable "not_a_variable" {}
}
"#;
    let scan = scan(text);
    assert_eq!(
        scan.variables,
        [
            var("region", false),
            var("size", true),
            var("tags", true),
            var("nested_default", false)
        ]
    );
    assert_eq!(
        scan.backends,
        [Backend {
            kind: "s3".into(),
            empty: true
        }]
    );
}

#[test]
fn strings_heredocs_and_comments_hide_their_contents() {
    let text = r#"
# variable "in_a_comment" {}
// variable "also" {}
/* variable "block" {
} */
locals {
  a = "${jsonencode({ x = "}" })} variable \"q\" { } $${"
  b = <<-EOT
    variable "in_heredoc" {
    }
    }
  EOT
  c = "%{ if true }{%{ endif }"
}
terraform {
  backend "s3" {
    # only a comment: still empty
  }
}
variable "after" {
  description = "text with # and // and /* inside"
}
"#;
    let scan = scan(text);
    assert_eq!(scan.variables, [var("after", false)]);
    assert_eq!(scan.backends.len(), 1);
    assert!(scan.backends[0].empty);
}

#[test]
fn a_backend_with_settings_is_not_empty_and_escapes_are_read() {
    let scan = scan("terraform {\n backend \"s3\" { bucket = \"b\" }\n}\nvariable \"a\\\"b\" {}\n");
    assert!(!scan.backends[0].empty);
    assert_eq!(scan.variables, [var("a\"b", false)]);
    let scan = super::scan("terraform {\n  backend \"local\" {\n    path = \"x\"\n  }\n}\n");
    assert_eq!(scan.backends[0].kind, "local");
    assert!(!scan.backends[0].empty);
}

#[test]
fn checks_name_the_root_and_both_lists() {
    let mut root = RootScan::default();
    root.variables.insert("a".into(), false);
    root.variables.insert("b".into(), true);
    root.variables.insert("c".into(), false);
    let passed: BTreeSet<String> = ["c".to_owned(), "x".to_owned(), "y".to_owned()].into();
    let e = root.check_variables("/infra", &passed).unwrap_err();
    assert!(e.contains("`/infra`"), "{e}");
    assert!(e.contains("missing: [a]"), "{e}");
    assert!(e.contains("undeclared: [x, y]"), "{e}");
    let passed: BTreeSet<String> = ["a".to_owned(), "c".to_owned()].into();
    root.check_variables("/infra", &passed).unwrap();
    let e = root.check_backend("/infra").unwrap_err();
    assert_eq!(
        e,
        "the Terraform root `/infra` must declare an empty `backend \"s3\" {}` block \
             (DevRamps configures the state)"
    );
    root.backends.push(Backend {
        kind: "s3".into(),
        empty: true,
    });
    root.check_backend("/infra").unwrap();
}

#[test]
fn unterminated_things_end_the_scan_quietly() {
    for text in [
        "variable \"a",
        "variable \"a\" {",
        "x = \"${",
        "x = <<EOF\nvariable \"b\" {}\n",
        "/* variable \"c\" {}",
        "}}}}",
        "terraform { backend \"s3\" {",
        "\"\\",
        "<<",
        "<<-",
    ] {
        let _ = scan(text);
    }
    assert_eq!(scan("variable \"a\" {").variables, [var("a", false)]);
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,300}") {
        let _ = scan(&text);
    }

    #[test]
    fn hcl_like_text_never_panics(parts in proptest::collection::vec(
        prop_oneof![
            Just("variable"), Just("\"v\""), Just("{"), Just("}"), Just("="), Just("\n"),
            Just("${"), Just("%{"), Just("\""), Just("<<EOF\n"), Just("EOF\n"), Just("#"),
            Just("/*"), Just("*/"), Just("//"), Just("\\"), Just("default"), Just("["),
            Just("terraform"), Just("backend"), Just("é"), Just(" "),
        ],
        0..80,
    )) {
        let _ = scan(&parts.concat());
    }
}
