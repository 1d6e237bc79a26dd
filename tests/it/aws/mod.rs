//! The AWS provider (src/cloud/aws) against moto and loopback fakes of EC2 and IMDS.

mod credentials;
mod e2e;
mod failures;
mod moto;
mod netns;
mod profiles;
mod writes;
