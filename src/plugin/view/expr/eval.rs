//! Evaluating an [`Expr`] against one query's [`Facts`]: a type mismatch or
//! a non-boolean result is false (the view does not hold), never an error.

use std::net::IpAddr;

use ipnet::IpNet;

use super::{Expr, Facts, Func, LitValue, Op};

/// A value during evaluation.
#[derive(Clone, Debug, PartialEq)]
enum Value {
    Str(String),
    Int(i64),
    Bool(bool),
    List(Vec<Value>),
}

impl Expr {
    /// Whether the expression holds for `f` (a value that is not a boolean,
    /// or a type mismatch, is false: the view does not match).
    pub fn eval(&self, f: &Facts<'_>) -> bool {
        matches!(self.value(f), Some(Value::Bool(true)))
    }

    fn value(&self, f: &Facts<'_>) -> Option<Value> {
        Some(match self {
            Expr::Lit(LitValue::Str(s)) => Value::Str(s.clone()),
            Expr::Lit(LitValue::Int(n)) => Value::Int(*n),
            Expr::Lit(LitValue::Bool(b)) => Value::Bool(*b),
            Expr::List(items) => {
                Value::List(items.iter().map(|e| e.value(f)).collect::<Option<_>>()?)
            }
            Expr::Not(e) => Value::Bool(!e.eval(f)),
            Expr::And(a, b) => Value::Bool(a.eval(f) && b.eval(f)),
            Expr::Or(a, b) => Value::Bool(a.eval(f) || b.eval(f)),
            Expr::Matches(e, re) => match e.value(f)? {
                Value::Str(s) => Value::Bool(re.is_match(&s)),
                _ => return None,
            },
            Expr::Cmp(a, op, b) => Value::Bool(compare(&a.value(f)?, *op, &b.value(f)?)?),
            Expr::Call(func, args) => call(*func, args, f)?,
        })
    }
}

fn compare(a: &Value, op: Op, b: &Value) -> Option<bool> {
    use Value::{Int, List, Str};
    Some(match (op, a, b) {
        (Op::Eq, _, _) => a == b,
        (Op::Ne, _, _) => a != b,
        (Op::Lt, Int(x), Int(y)) => x < y,
        (Op::Le, Int(x), Int(y)) => x <= y,
        (Op::Gt, Int(x), Int(y)) => x > y,
        (Op::Ge, Int(x), Int(y)) => x >= y,
        (Op::Contains, Str(x), Str(y)) => x.contains(y.as_str()),
        (Op::StartsWith, Str(x), Str(y)) => x.starts_with(y.as_str()),
        (Op::EndsWith, Str(x), Str(y)) => x.ends_with(y.as_str()),
        (Op::In, _, List(items)) => items.contains(a),
        (Op::NotIn, _, List(items)) => !items.contains(a),
        _ => return None,
    })
}

fn call(func: Func, args: &[Expr], f: &Facts<'_>) -> Option<Value> {
    Some(match func {
        Func::Name => Value::Str(f.name.to_string()),
        Func::Type => Value::Str(f.qtype.to_string()),
        Func::Class => Value::Str(f.class.to_string()),
        Func::Proto => Value::Str(f.proto.to_string()),
        Func::ClientIp => Value::Str(f.client_ip.to_string()),
        Func::ClientPort => Value::Int(i64::from(f.client_port)),
        Func::Id => Value::Int(i64::from(f.id)),
        Func::Do => Value::Bool(f.dnssec_ok),
        Func::Bufsize => Value::Int(i64::from(f.bufsize)),
        Func::InCidr => {
            let [ip, cidr] = args else { return None };
            let (Value::Str(ip), Value::Str(cidr)) = (ip.value(f)?, cidr.value(f)?) else {
                return None;
            };
            let ip: IpAddr = ip.parse().ok()?;
            let ip = match ip {
                IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
                v4 => v4,
            };
            let net: IpNet = cidr.parse().ok()?;
            Value::Bool(net.contains(&ip))
        }
    })
}
