//! Executing the agent (process and function runners).
