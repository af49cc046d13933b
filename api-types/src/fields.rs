//! Field selectors: parsing (`metadata.name=x,spec.nodeName!=`) and matching.
