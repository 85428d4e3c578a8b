//! Generated code uses absolute paths and private names only: shadowing prelude names and
//! primitive types (those serde's derive also leaves alone), or constants named like its locals, breaks nothing.
#![allow(dead_code, non_camel_case_types, non_upper_case_globals)]

struct String;
struct Vec;
struct Option;
struct Box;
struct Clone;
struct str;
struct u8;
const path: () = ();
const prefix: () = ();
const allow: () = ();
const out: () = ();

#[derive(serde::Serialize, cqrs_ddd::spec::ReadModel)]
#[read_model(collection = "books", index(title))]
pub struct Book {
    #[read_model(filter(eq, like), sort, select)]
    title: ::std::string::String,
    #[read_model(filter)]
    tags: ::std::vec::Vec<::std::string::String>,
    address: Address,
    #[read_model(filter(eq))]
    r#type: ::std::string::String,
}

#[derive(serde::Serialize, cqrs_ddd::spec::ReadModel)]
pub struct Address {
    #[read_model(filter, index)]
    city: ::std::string::String,
}

fn main() {
    use cqrs_ddd::spec::ReadModel as _;
    let _ = Book::fields().address.city.eq("Athens");
    assert_eq!(Book::fields().r#type.path(), "type");
    let _ = Book::allow_list();
    assert_eq!(Book::indexes().len(), 2);
}
