"""The nbsim command-line application (click)."""
