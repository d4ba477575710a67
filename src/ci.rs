//! CI environment detection (GitHub Actions, GitLab CI, Jenkins, generic CI).
