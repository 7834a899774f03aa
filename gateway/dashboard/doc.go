// Package dashboard is the gateway's web page for the people who run the building: the
// devices and their transfers, the refusals (bad keys, rollbacks, digest and signature
// failures, refused upstream releases), what the cache holds and what the upstream serves.
// Rows are rendered on the server with html/template and kept live over server-sent events
// fed by admin.Fleet.Subscribe; the page's few lines of script only put rendered rows in
// place.
//
// It sits beside the flow, like gateway/admin, whose Fleet and Authenticator it reuses:
// nothing flows back from it. Templates, style and script are embedded: the gateway has no
// internet, so the page loads nothing from elsewhere.
package dashboard
