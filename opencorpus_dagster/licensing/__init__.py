"""Licences: SPDX normalisation, the policy and its gate, licence and opt-out signals in web pages."""
