//! Test helpers shared by the fluxloop CLI's and the platform's test suites.
//!
//! [`oidc`] owns a local OIDC issuer on 127.0.0.1: generated keys, discovery,
//! JWKS, token minting (good and forged) and a stand-in for GitHub Actions'
//! ID token endpoint. Nothing here reaches the shipped binaries.

pub mod oidc;
