// Package docs holds tracevault's manual (the Markdown files beside this one) and the test that
// every relative link and #anchor in the project's Markdown files resolves. It has no code the
// binary uses.
package docs
