//! Whose data a caller may see: the operator every account's, an admin one account's. The
//! operations reads and actions (`ops`, `pauses`, `audit`) take it.

use entity::delivery;
use sea_orm::{ColumnTrait, Condition, DatabaseBackend};
use uuid::Uuid;

/// Whose data a caller may see.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// The operator: every account.
    All,
    /// An account's admin.
    Account(Uuid),
}

impl Scope {
    /// The scope as a condition on `account_id` for raw SQL, after `keyword` (`WHERE` or
    /// `AND`; empty for every account), and its one parameter, which the condition may use
    /// any number of times.
    pub(crate) fn raw_filter(
        self,
        backend: DatabaseBackend,
        keyword: &str,
    ) -> (String, Vec<sea_orm::Value>) {
        match (self, backend) {
            (Scope::All, _) => (String::new(), vec![]),
            (Scope::Account(id), DatabaseBackend::Postgres) => {
                (format!(" {keyword} account_id = $1"), vec![id.into()])
            }
            (Scope::Account(id), _) => (format!(" {keyword} account_id = ?1"), vec![id.into()]),
        }
    }

    pub(crate) fn deliveries(self) -> Condition {
        match self {
            Scope::All => Condition::all(),
            Scope::Account(id) => Condition::all().add(delivery::Column::AccountId.eq(id)),
        }
    }
}
