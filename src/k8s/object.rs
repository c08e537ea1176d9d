//! Why an API object could not be turned into a role's slim model: one
//! error type for every role's conversions (the controller's planner model,
//! the proxy's model), so a bad object is reported the same way whichever
//! role meets it. The conversions themselves stay in the roles.

/// Why an API object could not be converted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ObjectError {
    /// A field needed to identify or use the object is absent.
    #[error("{kind} {name}: missing {field}")]
    Missing {
        /// The object's kind (`Service`, `Pod`, ...).
        kind: &'static str,
        /// The object's name, or `?` when that is what is missing.
        name: String,
        /// The absent field.
        field: &'static str,
    },
    /// An IP field does not hold an IP address.
    #[error("{kind} {name}: {field} {value:?} is not an IP address")]
    BadIp {
        /// The object's kind.
        kind: &'static str,
        /// The object's name.
        name: String,
        /// The field holding the bad value.
        field: &'static str,
        /// The bad value.
        value: String,
    },
    /// `spec.ipFamilies` names a family other than IPv4/IPv6.
    #[error("Service {name}: unknown IP family {value:?}")]
    BadFamily {
        /// The Service's name.
        name: String,
        /// The unknown family.
        value: String,
    },
    /// Another field holds a value out of its range or vocabulary.
    #[error("{kind} {name}: bad {field} {value:?}")]
    BadValue {
        /// The object's kind.
        kind: &'static str,
        /// The object's name.
        name: String,
        /// The field.
        field: &'static str,
        /// The bad value.
        value: String,
    },
}
