package provider

// The provider docs in docs/ are generated from the schema's
// MarkdownDescriptions and from examples/ (see `make generate`).
//go:generate go tool tfplugindocs generate --provider-dir .. --provider-name tributary --rendered-website-dir docs
