//! hallpass: a self-hosted authentication server. One binary, one SQLite
//! file.
//!
//! The core (accounts, passwords, tokens, sessions, limits, audit) knows
//! nothing of HTTP; `api/` holds thin dialect adapters over it, and
//! `server` runs them on the HTTP engine (`engine`, hyper). See ARCHITECTURE.md for the picture.

#![forbid(unsafe_code)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod accounts;
pub mod activity;
pub mod admin;
pub mod api;
pub mod app;
pub mod audit;
pub mod auth;
pub mod batch;
pub mod clock;
pub mod codes;
pub mod config;
pub mod crypto;
pub mod db;
pub mod emailed;
pub mod engine;
pub mod error;
pub mod factors;
pub mod filter;
pub mod forward;
pub mod http;
pub mod jwt;
pub mod limits;
pub mod log;
pub mod mail;
pub mod metrics;
pub mod oidc;
pub mod password;
pub mod server;
pub mod sessions;
pub mod signup;
pub mod social;
pub mod softlock;
pub mod totp;
pub mod url;
pub mod web;

pub use clock::Clock;
pub use config::Config;
pub use error::Error;
pub use server::{serve, Running};
