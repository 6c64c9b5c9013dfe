# No backend block: DevRamps cannot configure the state.
terraform {
  required_providers {
    devramps = {
      source  = "devramps/devramps"
      version = "1.0.0"
    }
  }
}

resource "devramps_thing" "a" {
  name = "a"
}
