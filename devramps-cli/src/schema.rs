//! `devramps schema`: prints the JSON Schema (draft 2020-12) of `pipeline.yaml`.

use clap::Args;

use crate::output::{Status, emit};

/// The long description of `devramps schema` (`--help`).
pub(crate) const LONG_ABOUT: &str = "Print the JSON Schema (draft 2020-12) of pipeline.yaml to stdout, so editors \
                  with a YAML language server can complete and check the file as it is typed.";

/// The examples shown after the help of `devramps schema`.
pub(crate) const AFTER_HELP: &str = "Examples:\n  \
                  devramps schema > .devramps/pipeline.schema.json\n\n\
                  Then, at the top of a pipeline.yaml (yaml-language-server):\n  \
                  # yaml-language-server: $schema=../pipeline.schema.json";

/// Arguments of `devramps schema` (none).
#[derive(Debug, Args)]
pub(crate) struct SchemaArgs {}

/// Runs `devramps schema`: the schema, pretty-printed, then a newline.
pub(crate) fn run(_args: &SchemaArgs) -> Status {
    let schema = devramps_core::pipeline::json_schema();
    match serde_json::to_string_pretty(&schema) {
        Ok(mut text) => {
            text.push('\n');
            emit(&text, Status::Success)
        }
        Err(e) => {
            crate::output::usage_error(&format!("cannot print the schema: {e}"));
            Status::Usage
        }
    }
}
