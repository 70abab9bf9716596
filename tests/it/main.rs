//! The one integration-test binary (one link, not one per file). Each
//! module is a flow or a dialect, driven over real HTTP against a server
//! started in-process by `support::TestServer`.

mod support;

mod activity;
mod admin;
mod browser;
mod cli;
mod conformance;
mod dialects;
mod emailed;
mod fakeidp;
mod forward;
mod hostile;
mod limits;
mod mail;
mod native;
mod oidc;
mod openapi;
mod operability;
mod recovery;
mod second_factor;
mod service;
mod social;
mod tokens;
mod web;
mod web_account;
mod web_consent;
mod web_emailed;
mod web_social;
