# As things_v2, with a renamed (replaced) and b removed (destroyed).
terraform {
  backend "s3" {}
  required_providers {
    devramps = {
      source  = "devramps/devramps"
      version = "1.0.0"
    }
  }
}

variable "prefix" {
  type = string
}

variable "size" {
  type    = number
  default = 1
}

resource "devramps_thing" "a" {
  name = "${var.prefix}-a-renamed"
  size = var.size
}

output "a_id" {
  value = devramps_thing.a.id
}
