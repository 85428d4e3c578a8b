//! What the application plugs into the mediator beside message routing.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A map keyed by type. A `TypeId` is a hash already: the map uses it as it is, instead
/// of hashing it again with SipHash on every lookup (several per command).
pub(crate) type TypeMap<V> = HashMap<TypeId, V, BuildHasherDefault<TypeIdHasher>>;

/// The hasher of [`TypeMap`]: the 64 bits a `TypeId` writes, kept as they are.
#[derive(Default)]
pub(crate) struct TypeIdHasher(u64);

impl Hasher for TypeIdHasher {
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }

    /// Whatever else is written (a `TypeId` writes one `u64` today), folded in.
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Values the application installs into the mediator when it builds it (the saga
/// runtime, the schedule), one per type. The mediator keeps them and never looks inside:
/// the module that owns a type reads it back with `Mediator::extension`.
#[derive(Default)]
pub(crate) struct Extensions {
    values: TypeMap<Box<dyn Any + Send + Sync>>,
}

impl Extensions {
    /// Installs `value`, replacing one of the same type.
    pub(crate) fn insert<T: Send + Sync + 'static>(&mut self, value: T) {
        self.values.insert(TypeId::of::<T>(), Box::new(value));
    }

    /// The value of type `T`, if one was installed.
    pub(crate) fn get<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.values.get(&TypeId::of::<T>())?.downcast_ref::<T>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_type_map_finds_each_type_again() {
        let mut map: TypeMap<&str> = TypeMap::default();
        map.insert(TypeId::of::<u8>(), "u8");
        map.insert(TypeId::of::<String>(), "String");
        map.insert(TypeId::of::<Vec<u8>>(), "Vec<u8>");
        assert_eq!(map.get(&TypeId::of::<String>()), Some(&"String"));
        assert_eq!(map.get(&TypeId::of::<Vec<u8>>()), Some(&"Vec<u8>"));
        assert_eq!(map.get(&TypeId::of::<u16>()), None);
    }
}
