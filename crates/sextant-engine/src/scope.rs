//! Tenant scope: which points an operation may read, count, change or delete.
//!
//! Every read and write of a [`Collection`](crate::Collection) takes a [`Scope`]. In a
//! collection with a tenant key, an operation must name a tenant ([`Scope::Tenant`]) or
//! explicitly ask for every tenant ([`Scope::AllTenants`], the administrator's path); an
//! unscoped operation is refused. A tenant scope becomes one more `must` condition on the
//! (always indexed) tenant key, so reads filter exactly as any filter does; writes check each
//! point: its tenant value must be the scope's, and a point may never move from one tenant to
//! another (an upsert over an id held by another tenant is refused, even on the admin path:
//! delete it first).
//!
//! Tenant ids are a string or an integer and compare by type and exact value: `"007"` is not
//! `7`, and integers above 2^53 stay distinct. Which type a collection's tenants have follows
//! from the tenant key's payload index (`keyword` → strings, `integer` → integers).

use serde_json::Value;
use sextant_core::filter::{payload_values, Condition, MatchValue};
use sextant_core::Num;
use sextant_storage::payload_index::FieldType;
use sextant_storage::schema::Schema;

use crate::collection::{Loc, State};
use crate::error::{EngineError, Result};

/// A tenant id: a string or an integer.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TenantId {
    /// A string tenant id (tenant key indexed as `keyword`).
    Str(String),
    /// An integer tenant id (tenant key indexed as `integer`); every `i64` and `u64`.
    Int(i128),
}

impl TenantId {
    /// The tenant id a JSON value holds: a string or an integer (floats are refused).
    pub fn from_json(v: &Value) -> Result<TenantId> {
        match v {
            Value::String(s) => Ok(TenantId::Str(s.clone())),
            Value::Number(n) => match Num::of(n) {
                Num::Int(i) => Ok(TenantId::Int(i)),
                Num::Float(_) => Err(EngineError::invalid(
                    "tenant",
                    format!("a tenant id is a string or an integer, got {n}"),
                )),
            },
            other => Err(EngineError::invalid(
                "tenant",
                format!(
                    "a tenant id is a string or an integer, got {}",
                    crate::collection::json_kind(other)
                ),
            )),
        }
    }

    /// Parses a tenant id typed on a command line or in a URL, as the tenant key's index type
    /// says: the text itself for a `keyword` key, an integer for an `integer` key.
    pub fn parse_for(schema: &Schema, text: &str) -> Result<TenantId> {
        let key = schema.tenant_key.as_deref().ok_or_else(|| {
            EngineError::invalid(
                "tenant",
                "the collection is not multi-tenant (it has no tenant key)".into(),
            )
        })?;
        match tenant_type(schema, key) {
            FieldType::Integer => text.trim().parse::<i128>().map(TenantId::Int).map_err(|_| {
                EngineError::invalid(
                    "tenant",
                    format!("tenant key {key:?} holds integers; {text:?} is not an integer"),
                )
            }),
            _ => Ok(TenantId::Str(text.to_string())),
        }
    }

    /// The JSON value (integers as `i64` or `u64`, whichever holds them).
    pub fn to_json(&self) -> Value {
        match self {
            TenantId::Str(s) => Value::String(s.clone()),
            TenantId::Int(i) => match (i64::try_from(*i), u64::try_from(*i)) {
                (Ok(v), _) => Value::from(v),
                (_, Ok(v)) => Value::from(v),
                // Only reachable from `parse_for` with a number outside JSON's integers; such a
                // tenant holds no points, so a value that matches nothing is right.
                _ => Value::String(format!("\u{0}out-of-range-integer:{i}")),
            },
        }
    }
}

impl std::fmt::Display for TenantId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TenantId::Str(s) => write!(f, "{s:?}"),
            TenantId::Int(i) => write!(f, "{i}"),
        }
    }
}

/// Which points an operation may see and change.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Scope {
    /// No tenant named: allowed only in a collection without a tenant key.
    #[default]
    Unscoped,
    /// One tenant's points (multi-tenant collections only).
    Tenant(TenantId),
    /// Every tenant's points: the explicit administrator's path (in a collection without a
    /// tenant key it is the same as [`Scope::Unscoped`]).
    AllTenants,
}

impl Scope {
    /// A scope from an optional tenant id and an all-tenants switch, as front ends take them.
    pub fn from_parts(tenant: Option<TenantId>, all_tenants: bool) -> Result<Scope> {
        match (tenant, all_tenants) {
            (Some(_), true) => Err(EngineError::invalid(
                "scope",
                "give a tenant or ask for all tenants, not both".into(),
            )),
            (Some(t), false) => Ok(Scope::Tenant(t)),
            (None, true) => Ok(Scope::AllTenants),
            (None, false) => Ok(Scope::Unscoped),
        }
    }
}

/// The type of a collection's tenant ids (from the tenant key's payload index).
pub(crate) fn tenant_type(schema: &Schema, key: &str) -> FieldType {
    schema
        .payload_indexes
        .iter()
        .find(|p| p.key == key)
        .map_or(FieldType::Keyword, |p| p.field_type)
}

/// Whether `t` has the type of the collection's tenant ids; otherwise why not.
pub(crate) fn check_type(
    schema: &Schema,
    key: &str,
    t: &TenantId,
) -> std::result::Result<(), String> {
    match (tenant_type(schema, key), t) {
        (FieldType::Integer, TenantId::Str(s)) => Err(format!(
            "tenant key {key:?} holds integers, got the string {s:?}"
        )),
        (FieldType::Keyword, TenantId::Int(i)) => Err(format!(
            "tenant key {key:?} holds strings, got the integer {i}"
        )),
        _ => Ok(()),
    }
}

/// A scope checked against a collection's schema.
#[derive(Debug, Clone)]
pub(crate) enum Resolved {
    /// Every point may be read and changed.
    All,
    /// Only points whose tenant key holds this tenant.
    Tenant {
        /// The tenant key.
        key: String,
        /// The tenant.
        tenant: TenantId,
    },
}

impl Resolved {
    /// Checks `scope` against the collection `name` with `schema`.
    pub(crate) fn new(name: &str, schema: &Schema, scope: &Scope) -> Result<Resolved> {
        match (&schema.tenant_key, scope) {
            (None, Scope::Unscoped | Scope::AllTenants) => Ok(Resolved::All),
            (None, Scope::Tenant(_)) => Err(EngineError::invalid(
                "tenant",
                format!("collection {name:?} is not multi-tenant (it has no tenant key)"),
            )),
            (Some(_), Scope::Unscoped) => Err(EngineError::TenantRequired(name.to_string())),
            (Some(_), Scope::AllTenants) => Ok(Resolved::All),
            (Some(key), Scope::Tenant(t)) => {
                check_type(schema, key, t).map_err(|e| {
                    EngineError::invalid("tenant", format!("collection {name:?}: {e}"))
                })?;
                Ok(Resolved::Tenant {
                    key: key.clone(),
                    tenant: t.clone(),
                })
            }
        }
    }

    /// The filter condition this scope adds to a read (`None`: no restriction).
    pub(crate) fn condition(&self) -> Option<Condition> {
        match self {
            Resolved::All => None,
            Resolved::Tenant { key, tenant } => Some(Condition::Match {
                key: key.clone(),
                value: MatchValue::Value(tenant.to_json()),
            }),
        }
    }

    /// Whether the live point at `loc` is inside the scope (its payload is read only for a
    /// tenant scope).
    pub(crate) fn admits_at(&self, st: &State, loc: Loc) -> bool {
        match self {
            Resolved::All => true,
            Resolved::Tenant { .. } => self.admits(&st.payload_at(loc)),
        }
    }

    /// Whether a point with `payload` is inside the scope.
    pub(crate) fn admits(&self, payload: &Value) -> bool {
        match self {
            Resolved::All => true,
            Resolved::Tenant { key, tenant } => tenant_of(payload, key).as_ref() == Some(tenant),
        }
    }
}

/// The tenant a stored payload belongs to (`None` when the key holds no single tenant id).
pub(crate) fn tenant_of(payload: &Value, key: &str) -> Option<TenantId> {
    match payload_values(payload, key).as_slice() {
        [v] => TenantId::from_json(v).ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tenant_ids_keep_their_type_and_exact_value() {
        assert_eq!(
            TenantId::from_json(&json!("007")).unwrap(),
            TenantId::Str("007".into())
        );
        assert_eq!(TenantId::from_json(&json!(7)).unwrap(), TenantId::Int(7));
        assert_ne!(
            TenantId::from_json(&json!(9_007_199_254_740_993_u64)).unwrap(),
            TenantId::from_json(&json!(9_007_199_254_740_992_u64)).unwrap()
        );
        assert!(TenantId::from_json(&json!(7.5)).is_err());
        assert!(TenantId::from_json(&json!([7])).is_err());
        assert_eq!(
            TenantId::Int(i128::from(u64::MAX)).to_json(),
            json!(u64::MAX)
        );
        assert_eq!(TenantId::Int(-3).to_json(), json!(-3));
    }

    #[test]
    fn scope_parts() {
        assert_eq!(Scope::from_parts(None, false).unwrap(), Scope::Unscoped);
        assert_eq!(Scope::from_parts(None, true).unwrap(), Scope::AllTenants);
        assert!(Scope::from_parts(Some(TenantId::Int(1)), true).is_err());
    }
}
