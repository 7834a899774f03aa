{"key_id": "208e69e6fc358c35", "alg": "ed25519", "sig": "qToImpssdzRaFhKsud2bQP2QJDOOsEseBuTasKKY/HHlePIUqqLCpCxTczYBYeJwaKUpF8HUVazXdpwsEc3NDw=="}
