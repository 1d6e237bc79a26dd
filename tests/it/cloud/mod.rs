//! What every cloud shares (src/cloud/http, token_cache): the one HTTP client and its retry
//! policy, TLS and proxies, credentials shared across handler processes, the latency proxy.

mod credential_cache;
mod hostile_settings;
mod http_retry;
mod latency_proxy;
mod tls;
