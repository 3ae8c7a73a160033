"""Who may call: scopes and principals, API keys, end-user feedback tokens and console links."""
