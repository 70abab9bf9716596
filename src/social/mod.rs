//! Social sign-in (issue 11): hallpass as the client of upstream identity providers.

pub mod fetch;
pub mod jose;
