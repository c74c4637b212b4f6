// Package sagas will hold the process managers (first: order fulfillment, issue 5).
package sagas
