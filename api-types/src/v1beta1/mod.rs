//! The 2014 `v1beta1` wire format and its conversion to and from v1.
