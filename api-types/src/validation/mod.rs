//! Validation of v1 objects: every field error with its path.
