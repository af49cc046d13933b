//! Defaults the apiserver fills in before validation (restartPolicy Always, protocol TCP...).
