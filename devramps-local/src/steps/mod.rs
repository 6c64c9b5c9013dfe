//! Custom steps (`CUSTOM:*`): step registries and the process runner that speaks the DevRamps
//! step protocol (reference §9.3).

mod metadata;
mod registry;

pub use metadata::{
    CatalogEntry, METADATA_TIMEOUT, MetadataError, ParamViolation, StepCatalog, StepMetadata,
    ViolationKind, parse_metadata_result, synthesize_metadata, synthesize_metadata_within,
};
pub use registry::StepRegistry;
