//! The SQL the adapters share, beneath each of them: a transaction that belongs to one
//! tenant ([`TenantTx`]), the decision point's filters as conditions on rows
//! ([`rows::RowFilter`]), and what a principal may read ([`readable`]).

pub mod readable;
pub mod rows;
mod tx;

pub use tx::TenantTx;
