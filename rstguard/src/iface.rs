//! Network interfaces by name and index.

use std::ffi::CString;

use crate::error::Error;

/// An interface rstguard works on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Iface {
    pub name: String,
    pub index: u32,
}

impl Iface {
    /// Looks an interface up by name.
    pub fn by_name(name: &str) -> Result<Iface, Error> {
        let index = index_of(name).ok_or_else(|| Error::NoSuchInterface(name.to_string()))?;
        Ok(Iface {
            name: name.to_string(),
            index,
        })
    }

    /// Resolves a list of names, refusing unknown ones and repeats.
    pub fn resolve_all(names: &[String]) -> Result<Vec<Iface>, Error> {
        let mut out: Vec<Iface> = Vec::with_capacity(names.len());
        for name in names {
            if out.iter().any(|i| &i.name == name) {
                return Err(Error::DuplicateInterface(name.clone()));
            }
            out.push(Iface::by_name(name)?);
        }
        Ok(out)
    }

    /// Whether the interface still exists with the same index.
    pub fn still_exists(&self) -> bool {
        index_of(&self.name) == Some(self.index)
    }
}

fn index_of(name: &str) -> Option<u32> {
    let c = CString::new(name).ok()?;
    // SAFETY: a valid NUL-terminated string; the call only reads it.
    let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (index != 0).then_some(index)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_resolves_and_bad_names_do_not() {
        assert_eq!(Iface::by_name("lo").unwrap().index, 1);
        assert!(matches!(
            Iface::by_name("no-such-if0"),
            Err(Error::NoSuchInterface(_))
        ));
        assert!(matches!(
            Iface::resolve_all(&["lo".into(), "lo".into()]),
            Err(Error::DuplicateInterface(_))
        ));
    }
}
