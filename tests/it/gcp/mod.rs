//! The GCP provider (src/cloud/gcp) against the loopback fake of Compute, metadata and OAuth.

mod auth;
mod description;
mod dry_run;
mod events;
mod failures;
mod gcloud;
