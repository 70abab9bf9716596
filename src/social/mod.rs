//! Social sign-in: upstream identity providers.

pub mod kinds;
