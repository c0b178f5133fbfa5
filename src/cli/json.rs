//! Just enough JSON output for `bitnet inspect --json` (and later `bench --json`): strings with
//! escapes, numbers, and GGUF metadata values. Non-finite floats become the strings "nan",
//! "inf", "-inf", since JSON has no such numbers.

use std::fmt::Write;

use bitnet::gguf::Value;

pub fn string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Writes a non-finite float as a string and returns true; false for a finite one.
fn non_finite(out: &mut String, x: f64) -> bool {
    match x {
        x if x.is_nan() => out.push_str("\"nan\""),
        x if x == f64::INFINITY => out.push_str("\"inf\""),
        x if x == f64::NEG_INFINITY => out.push_str("\"-inf\""),
        _ => return false,
    }
    true
}

/// Rust's `{:e}` is the shortest form that reads back to the same value, and valid JSON.
pub fn f32(out: &mut String, x: f32) {
    if !non_finite(out, x as f64) {
        let _ = write!(out, "{x:e}");
    }
}

pub fn f64(out: &mut String, x: f64) {
    if !non_finite(out, x) {
        let _ = write!(out, "{x:e}");
    }
}

/// A metadata value; arrays are written in full.
pub fn value(out: &mut String, v: &Value<'_>) {
    match v {
        Value::U8(x) => write_num(out, x),
        Value::I8(x) => write_num(out, x),
        Value::U16(x) => write_num(out, x),
        Value::I16(x) => write_num(out, x),
        Value::U32(x) => write_num(out, x),
        Value::I32(x) => write_num(out, x),
        Value::U64(x) => write_num(out, x),
        Value::I64(x) => write_num(out, x),
        Value::F32(x) => f32(out, *x),
        Value::F64(x) => f64(out, *x),
        Value::Bool(x) => out.push_str(if *x { "true" } else { "false" }),
        Value::String(s) => string(out, &String::from_utf8_lossy(s)),
        Value::Array(a) => {
            out.push('[');
            for (i, e) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                value(out, &e);
            }
            out.push(']');
        }
    }
}

fn write_num(out: &mut String, x: &dyn std::fmt::Display) {
    let _ = write!(out, "{x}");
}

/// Writes `"key":` (with a leading comma unless first).
pub fn key(out: &mut String, first: &mut bool, k: &str) {
    if !*first {
        out.push(',');
    }
    *first = false;
    string(out, k);
    out.push(':');
}
