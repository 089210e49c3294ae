// The module is its header; this file exists so SwiftPM builds a C target.
