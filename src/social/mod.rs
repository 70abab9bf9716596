//! Social sign-in: upstream identity providers.

pub mod kinds;

pub mod fetch;
pub mod jose;
