pub mod azure_fake;
