// Package notify sends one report per run that changed or failed something to every shoutrrr URL
// in notify.urls, off the run's path: a slow or broken receiver never delays or fails a run.
package notify
