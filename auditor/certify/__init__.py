"""auditor.certify: calibrated error bands on estimated stage effects, and the loop that decides
every verdict either on an exact leave-stage-out replay or on an estimate whose band clears the
threshold (docs/certify.md)."""
