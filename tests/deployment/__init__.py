"""Tests against a real Airflow deployment (``airflow standalone``) talking to the emulator."""
